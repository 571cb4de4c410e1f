#include "postgres/statement_cache.hpp"

#include <algorithm>

namespace entity::postgres_detail {

statement_cache::statement_cache(std::size_t capacity, statement_counters* counters)
    : capacity_(capacity), counters_(counters) {}

statement_cache::use statement_cache::lookup(const std::string& key) {
  if (auto it = index_.find(key); it != index_.end()) {
    order_.splice(order_.begin(), order_, it->second);
    if (counters_) counters_->hits.fetch_add(1, std::memory_order_relaxed);
    return {it->second->name, false};
  }
  if (counters_) counters_->misses.fetch_add(1, std::memory_order_relaxed);
  while (!order_.empty() && order_.size() >= capacity_) drop(std::prev(order_.end()), true);
  order_.push_front(entry{key, "entity_" + std::to_string(next_name_++)});
  auto it = order_.begin();
  index_.emplace(it->key, it);
  by_name_.emplace(it->name, it);
  return {it->name, true};
}

void statement_cache::prepared(std::string_view name, bool ok) {
  if (ok) return;
  if (auto it = by_name_.find(name); it != by_name_.end()) return drop(it->second, false);
  // Given up before the server answered: there is nothing to deallocate either.
  std::erase(closing_, name);
}

void statement_cache::forget(std::string_view name) {
  if (auto it = by_name_.find(name); it != by_name_.end()) drop(it->second, true);
}

void statement_cache::drop(std::list<entry>::iterator it, bool close) {
  index_.erase(it->key);
  by_name_.erase(it->name);
  if (close) closing_.push_back(std::move(it->name));
  order_.erase(it);
}

}  // namespace entity::postgres_detail
