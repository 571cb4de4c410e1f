#include "postgres/pipeline.hpp"

#include <memory>

#include "postgres/connection.hpp"

namespace entity::postgres_detail {

void pipeline::sent(pipeline_entry kind, std::string_view sql, std::size_t max_rows,
                    std::string_view name) {
  // A batch repeats one statement: its text is kept once, not once per parameter set.
  if (texts_.empty() || texts_.back() != sql) texts_.emplace_back(sql);
  std::size_t named = no_text;
  if (!name.empty()) {
    if (names_.empty() || names_.back() != name) names_.emplace_back(name);
    named = names_.size() - 1;
  }
  entries_.push_back({kind, max_rows, texts_.size() - 1, named});
  if (kind == pipeline_entry::setting) ++settings_;
}

void pipeline::synced() {
  // A failure reported where the sync point is due names the command before it.
  entries_.push_back(
      {pipeline_entry::sync, 0, texts_.empty() ? no_text : texts_.size() - 1, no_text});
  ++syncs_;
}

void pipeline::settle(statement_cache& cache) {
  for (const auto& [name, ok] : prepares_) cache.prepared(name, ok);
  for (const std::string& name : stale_) cache.forget(name);
  prepares_.clear();
  stale_.clear();
}

void pipeline::pop() noexcept {
  if (entries_[next_].kind == pipeline_entry::sync) --syncs_;
  if (++next_ == entries_.size()) clear();
}

void pipeline::clear() noexcept {
  entries_.clear();
  texts_.clear();
  names_.clear();
  next_ = 0;
  syncs_ = 0;
}

void pipeline::take(PGresult* r, outcome& out) {
  const std::unique_ptr<PGresult, void (*)(PGresult*)> owned(r, PQclear);
  if (empty()) return lost(out);  // a result nothing was sent for
  const entry& due = entries_[next_];
  const bool at_sync = due.kind == pipeline_entry::sync;
  if (!r) {
    // A command's results end with a null; a sync point has none, so a null where one is due
    // is libpq with nothing more to give.
    if (at_sync) return lost(out);
    return pop();
  }
  const ExecStatusType status = PQresultStatus(r);
  if (status == PGRES_PIPELINE_SYNC) {
    if (!at_sync) return lost(out);  // a command's results were skipped: out of step
    return pop();
  }
  result dropped;
  switch (due.kind) {
    case pipeline_entry::statement:
      if (due.name != no_text && stale_statement(r)) stale_.push_back(names_[due.name]);
      absorb(r, pg_, text_of(due), due.max_rows, out.res, out.ec, out.diag);
      return;
    case pipeline_entry::prepare:
      if (due.name != no_text) prepares_.emplace_back(names_[due.name], status == PGRES_COMMAND_OK);
      absorb(r, pg_, text_of(due), 0, dropped, out.ec, out.diag);
      return;
    case pipeline_entry::cleanup:
      return;
    case pipeline_entry::setting:
      if (status == PGRES_COMMAND_OK) ++settings_applied_;
      return;
    case pipeline_entry::own_command:
    case pipeline_entry::sync:  // where a sync point is due: libpq's report of a failure
      absorb(r, pg_, text_of(due), 0, dropped, out.ec, out.diag);
      return;
  }
}

void pipeline::lost(outcome& out) {
  if (!out.ec) {
    error_of(nullptr, pg_, empty() ? std::string_view() : text_of(entries_[next_]), out.ec,
             out.diag);
    if (out.diag.message.empty())
      out.diag.message = "the server's results were out of step with the pipeline";
  }
  failed_ = true;
  clear();
}

bool send_queued(PGconn* pg, pipeline& p, pipeline_entry kind, std::string_view sql,
                 const std::string& text, const params& args, std::size_t max_rows) {
  if (!send_statement(pg, text, args)) return false;
  p.sent(kind, sql, max_rows);
  return true;
}

bool send_queued_prepared(PGconn* pg, pipeline& p, pipeline_entry kind, std::string_view sql,
                          const std::string& name, const params& args, std::size_t max_rows) {
  if (!send_prepared(pg, name, args)) return false;
  p.sent(kind, sql, max_rows, name);
  return true;
}

bool send_sync(PGconn* pg, pipeline& p) {
  if (PQpipelineSync(pg) != 1) return false;
  p.synced();
  return true;
}

}  // namespace entity::postgres_detail
