// make_infrastructure names both engines, so it lives in the whole library (entity::db), beside
// them: entity::core, the library a SQLite-only program links, holds no reference to the
// PostgreSQL engine or to libpq.
#include <string>
#include <utility>

#include "entity/infrastructure.hpp"
#include "entity/postgres.hpp"
#include "entity/sqlite.hpp"

namespace entity {

std::shared_ptr<infrastructure> make_infrastructure(std::string_view url) {
  engine_target t = parse_target(url);
  if (t.postgres) {
    postgres_params p;
    p.url = std::move(t.location);
    return std::make_shared<postgres_infrastructure>(std::move(p));
  }
  sqlite_params p;
  p.path = std::move(t.location);
  return std::make_shared<sqlite_infrastructure>(std::move(p));
}

}  // namespace entity
