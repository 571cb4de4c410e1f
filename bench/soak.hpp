// The bounded soak behind `entitydb bench --soak SECONDS`.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace entity::bench {

struct soak_params {
  std::chrono::duration<double> duration{20.0};
  std::string db_dir;  ///< empty: a temporary folder
};

struct soak_result {
  double seconds = 0;
  std::int64_t ops = 0;
  std::int64_t errors = 0;  ///< must be 0
  std::string first_error;
  double p50_us = 0;
  double p99_us = 0;
  /// The process's own resident memory (anonymous pages: heap, stacks): the highest seen in the
  /// second quarter of the run (after the warm-up) and in the last quarter.
  std::int64_t rss_start = 0;
  std::int64_t rss_end = 0;
  /// Resident file-backed pages (the database read through its memory map, the program's own
  /// code): the operating system's cache, reported but not held against the limit.
  std::int64_t mapped_start = 0;
  std::int64_t mapped_end = 0;
  double growth = 0;  ///< (end - start) / start; must stay at or under 0.10
  std::int64_t keys = 0;
};

/// Runs the soak; `progress` gets the fraction done.
soak_result soak(const soak_params& p, const std::function<void(double)>& progress);

}  // namespace entity::bench
