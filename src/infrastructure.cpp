#include <string>

#include "entity/infrastructure.hpp"
#include "entity/postgres.hpp"
#include "entity/sqlite.hpp"

namespace entity {

std::shared_ptr<infrastructure> make_infrastructure(std::string_view url) {
  auto starts = [&](std::string_view prefix) { return url.substr(0, prefix.size()) == prefix; };
  if (starts("postgresql://") || starts("postgres://")) {
    postgres_params p;
    p.url = std::string(url);
    return std::make_shared<postgres_infrastructure>(std::move(p));
  }
  std::string path(url);
  if (starts("sqlite://"))
    path = std::string(url.substr(9));
  else if (starts("sqlite:"))
    path = std::string(url.substr(7));
  if (path.empty()) throw error(errc::invalid_argument, {"the database path is empty", {}});
  sqlite_params p;
  p.path = path;
  return std::make_shared<sqlite_infrastructure>(std::move(p));
}

}  // namespace entity
