// The core both engines share (src/common/engine_core.hpp), tested as plain code: the
// lifecycle's transitions, the request counters, and the mark that tells an engine's own
// threads from the others.
#include "common/engine_core.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <entity/entity.hpp>
#include <future>
#include <memory>
#include <thread>

#include "concurrency.hpp"

namespace {

using entity::errc;
using entity::detail::lifecycle;

TEST(Lifecycle, StartsOnceRunsAndShutsDownForGood) {
  lifecycle life;
  EXPECT_FALSE(life.running());
  EXPECT_EQ(life.not_running(), errc::not_started);
  ASSERT_TRUE(life.begin_startup());
  // While it starts, it is not running yet, and a second startup leaves it to the first.
  EXPECT_FALSE(life.running());
  EXPECT_EQ(life.not_running(), errc::not_started);
  EXPECT_FALSE(life.begin_startup());
  life.started();
  EXPECT_TRUE(life.running());
  EXPECT_FALSE(life.begin_startup());  // already running: nothing to do
  EXPECT_TRUE(life.begin_shutdown());  // the caller stops it
  EXPECT_FALSE(life.running());
  EXPECT_EQ(life.not_running(), errc::shut_down);
  EXPECT_FALSE(life.begin_shutdown());  // once
  try {
    life.begin_startup();
    FAIL() << "started again after shutdown";
  } catch (const entity::error& e) {
    EXPECT_EQ(e.code(), errc::shut_down);
    EXPECT_NE(std::string(e.what()).find("shutdown()"), std::string::npos) << e.what();
  }
}

TEST(Lifecycle, AFailedStartupLeavesTheEngineNotStartedAndMayBeRetried) {
  lifecycle life;
  ASSERT_TRUE(life.begin_startup());
  life.startup_failed();
  EXPECT_FALSE(life.running());
  EXPECT_EQ(life.not_running(), errc::not_started);
  ASSERT_TRUE(life.begin_startup());
  life.started();
  EXPECT_TRUE(life.running());
}

TEST(Lifecycle, AnEngineNeverStartedIsShutDownAtOnce) {
  lifecycle life;
  EXPECT_FALSE(life.begin_shutdown());  // nothing for the caller to stop
  EXPECT_EQ(life.not_running(), errc::shut_down);
  EXPECT_THROW(life.begin_startup(), entity::error);
}

TEST(Lifecycle, AShutdownDuringStartupIsLeftToTheStartup) {
  lifecycle life;
  ASSERT_TRUE(life.begin_startup());
  EXPECT_FALSE(life.begin_shutdown());
  life.started();
  EXPECT_TRUE(life.running());
  EXPECT_TRUE(life.begin_shutdown());
}

TEST(Lifecycle, TheNotRunningMessageIsTheCodesOwn) {
  lifecycle life;
  entity::diagnostics diag;
  auto ec = life.not_running(diag);
  EXPECT_EQ(ec, errc::not_started);
  EXPECT_EQ(diag.message, ec.message());
  EXPECT_NE(diag.message.find("startup()"), std::string::npos);
}

TEST(RequestCounters, CountOperationsErrorsAndTimeouts) {
  entity::detail::request_counters counters;
  auto now = std::chrono::steady_clock::now();
  counters.finished({}, now);
  counters.finished({}, now);
  counters.finished(entity::make_error_code(errc::query_timeout), now);
  counters.finished(entity::make_error_code(errc::invalid_argument), now);
  entity::infrastructure_stats s;
  counters.fill(s);
  EXPECT_EQ(s.operations, 4u);
  EXPECT_EQ(s.errors, 2u);
  EXPECT_EQ(s.timeouts, 1u);
  EXPECT_GE(s.p99_latency_us, s.p50_latency_us);
}

TEST(RequestCounters, LatencyIsMeasuredFromSubmission) {
  entity::detail::request_counters counters;
  counters.finished({}, std::chrono::steady_clock::now() - std::chrono::milliseconds(50));
  entity::infrastructure_stats s;
  counters.fill(s);
  // One request, submitted 50 ms ago: both percentiles are that one (to the histogram's 1/16).
  EXPECT_GE(s.p50_latency_us, 50'000 * 15 / 16.0);
  EXPECT_EQ(s.p50_latency_us, s.p99_latency_us);
}

TEST(EngineThreadMark, MarksTheCurrentThreadForItsScopeAndNests) {
  int a = 0, b = 0;
  EXPECT_EQ(entity::detail::engine_of_this_thread, nullptr);
  {
    entity::detail::engine_thread_mark outer(&a);
    EXPECT_EQ(entity::detail::engine_of_this_thread, &a);
    {
      entity::detail::engine_thread_mark inner(&b);
      EXPECT_EQ(entity::detail::engine_of_this_thread, &b);
    }
    EXPECT_EQ(entity::detail::engine_of_this_thread, &a);
  }
  EXPECT_EQ(entity::detail::engine_of_this_thread, nullptr);
}

// shut_down from a thread marked for the engine hands the work to another thread instead of
// waiting for itself; from any other thread it shuts down at once, on that thread.
struct fake_engine {
  std::promise<std::thread::id> shut_on;
  void shutdown() { shut_on.set_value(std::this_thread::get_id()); }
};

TEST(EngineThreadMark, ShutDownFromOutsideRunsOnTheCallersThread) {
  auto engine = std::make_shared<fake_engine>();
  auto on = engine->shut_on.get_future();
  entity::detail::shut_down(engine);
  ASSERT_EQ(on.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  EXPECT_EQ(on.get(), std::this_thread::get_id());
}

ENTITY_CONCURRENT_TEST(EngineThreadMark, ShutDownFromTheEnginesOwnThreadRunsOnAnother) {
  auto engine = std::make_shared<fake_engine>();
  auto on = engine->shut_on.get_future();
  {
    entity::detail::engine_thread_mark mark(engine.get());
    entity::detail::shut_down(engine);
  }
  ASSERT_EQ(on.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_NE(on.get(), std::this_thread::get_id());
}

}  // namespace

TEST(DeadlineAfter, AddsTheTimeoutToNow) {
  using namespace std::chrono_literals;
  const auto now = std::chrono::steady_clock::now();
  EXPECT_EQ(entity::detail::deadline_after(now, 250ms), now + 250ms);
}

TEST(DeadlineAfter, ANonPositiveTimeoutIsDueAtOnce) {
  using namespace std::chrono_literals;
  const auto now = std::chrono::steady_clock::now();
  EXPECT_EQ(entity::detail::deadline_after(now, 0ms), now);
  EXPECT_EQ(entity::detail::deadline_after(now, -5ms), now);
}

TEST(DeadlineAfter, ATimeoutTooLongToAddSaturatesInsteadOfWrapping) {
  using clock = std::chrono::steady_clock;
  using ms = std::chrono::milliseconds;
  const auto now = clock::now();
  // 1e10 s is past what steady_clock's nanoseconds can hold from now; milliseconds::max()
  // overflows even its conversion to nanoseconds.
  for (ms t : {ms(10'000'000'000'000), ms(10'000'000'000'000'000), ms::max()}) {
    auto d = entity::detail::deadline_after(now, t);
    EXPECT_EQ(d, clock::time_point::max()) << t.count();
  }
  // 1e6 s still fits and is added exactly.
  EXPECT_EQ(entity::detail::deadline_after(now, ms(1'000'000'000)), now + ms(1'000'000'000));
}

namespace {

TEST(Complete, CountsTheRequestThenRunsItsCompletionAsTheEngines) {
  entity::detail::request_counters counters;
  const int engine = 0;  // any address stands for the engine
  const void* seen_engine = nullptr;
  entity::infrastructure_stats during;
  entity::error_code seen;
  entity::outcome out;
  out.ec = entity::make_error_code(errc::query_timeout);
  entity::detail::complete(
      &engine, counters, std::chrono::steady_clock::now(),
      [&](entity::outcome&& o) {
        seen = o.ec;
        seen_engine = entity::detail::engine_of_this_thread;
        counters.fill(during);
      },
      std::move(out));
  EXPECT_EQ(seen, errc::query_timeout);
  EXPECT_EQ(seen_engine, &engine);
  EXPECT_EQ(during.operations, 1u);  // counted before its caller hears of it
  EXPECT_EQ(during.timeouts, 1u);
  EXPECT_EQ(entity::detail::engine_of_this_thread, nullptr);  // the mark ends with it
}

TEST(DeadlineOf, IsTheRequestsOwnTimeoutOrTheEnginesDefault) {
  using namespace std::chrono_literals;
  const auto now = std::chrono::steady_clock::now();
  entity::request r;
  EXPECT_EQ(entity::detail::deadline_of(r, now, 30s), now + 30s);
  r.timeout = 5ms;
  EXPECT_EQ(entity::detail::deadline_of(r, now, 30s), now + 5ms);
  r.timeout = std::chrono::milliseconds::max();
  EXPECT_EQ(entity::detail::deadline_of(r, now, 30s), decltype(now)::max());
}

}  // namespace
