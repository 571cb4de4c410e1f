#include "entity/infrastructure.hpp"

#include <string>
#include <utility>

namespace entity {

void cancellation::request() noexcept {
  if (requested_.exchange(true, std::memory_order_acq_rel)) return;
  wake_up wake;  // destroyed after the lock is released
  // The wake-up runs under the lock, so that clear() returns only once it has finished: the
  // engine may then free what the wake-up touches.
  std::lock_guard lk(mu_);
  wake = std::move(wake_);
  if (wake) wake();
}

void cancellation::on_request(wake_up wake) {
  wake_up replaced;  // destroyed after the lock is released
  std::lock_guard lk(mu_);
  replaced = std::move(wake_);
  if (requested())
    wake();
  else
    wake_ = std::move(wake);
}

void cancellation::clear() noexcept {
  wake_up gone;
  std::lock_guard lk(mu_);
  gone = std::move(wake_);
}

engine_target parse_target(std::string_view url) {
  auto starts = [&](std::string_view prefix) { return url.substr(0, prefix.size()) == prefix; };
  if (starts("postgresql://") || starts("postgres://")) return {true, std::string(url)};
  std::string_view path = url;
  if (starts("sqlite://"))
    path = url.substr(9);
  else if (starts("sqlite:"))
    path = url.substr(7);
  if (path.empty()) throw error(errc::invalid_argument, {"the database path is empty", {}});
  return {false, std::string(path)};
}

// make_infrastructure is in make_infrastructure.cpp: it names both engines.

}  // namespace entity
