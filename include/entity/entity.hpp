// entity-db: the whole API in one include.
#pragma once

#include "entity/database.hpp"
#include "entity/error.hpp"
#include "entity/event_loop.hpp"
#include "entity/infrastructure.hpp"
#include "entity/json.hpp"
#include "entity/memory.hpp"
#include "entity/postgres.hpp"
#include "entity/sqlite.hpp"
#include "entity/value.hpp"
#include "entity/vector_store.hpp"
#include "entity/vector_types.hpp"
