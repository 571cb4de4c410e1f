// The runner that serves every operation of layer 3 to sync and async callers
// (src/common/op_runner.hpp): what an operation's code throws, in its start or in a
// continuation, ends the operation with that error, once, in every form; what the caller's own
// handler throws goes on to the caller's event loop.
#include "common/op_runner.hpp"

#include <gtest/gtest.h>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <memory>
#include <stdexcept>
#include <string>

#include "library_support.hpp"

namespace {

namespace asio = boost::asio;
using entity::diagnostics;
using entity::errc;
using entity::error_code;
using entity::detail::step_result;

// Where the test's operation throws.
enum class fault { none, in_start, in_continuation, after_the_end };

struct test_op : entity::detail::operation<std::shared_ptr<entity::database>, std::int64_t> {
  using operation::operation;
  fault where = fault::none;

  static void start(std::shared_ptr<test_op> op) {
    if (op->where == fault::in_start)
      throw entity::error(errc::invalid_argument, {"refused in start", {}});
    op->run.fetch_one(*op->st, "SELECT 40 + 2", {},
                      [op](step_result<std::optional<entity::row>> r) {
                        if (op->where == fault::in_continuation)
                          throw std::runtime_error("the continuation failed");
                        op->succeed(r.value->get<std::int64_t>(0));
                        // Ended: a later failure of the same operation changes nothing.
                        if (op->where == fault::after_the_end)
                          op->fail_with(make_error_code(errc::conflict), {"late", {}});
                      });
  }
};

class OpRunner : public ::testing::Test {
 protected:
  std::shared_ptr<entity::database> db =
      std::make_shared<entity::database>(entity::test::started());

  std::int64_t inline_run(fault where, error_code& ec, diagnostics& diag) {
    return entity::detail::run_inline<test_op>(db, ec, diag,
                                               [&](test_op& op) { op.where = where; });
  }

  // The async form on an io_context; `on_end` is the caller's handler.
  template <class OnEnd>
  void async_run(asio::io_context& io, fault where, diagnostics& diag, OnEnd on_end) {
    entity::detail::run_async<test_op>(
        db, &diag,
        entity::detail::handler_of<std::int64_t>(asio::bind_executor(io, std::move(on_end))),
        [&](test_op& op) { op.where = where; });
  }
};

TEST_F(OpRunner, InlineAThrowInStartIsTheOperationsError) {
  error_code ec;
  diagnostics diag;
  EXPECT_EQ(inline_run(fault::in_start, ec, diag), 0);
  EXPECT_EQ(ec, errc::invalid_argument);
  EXPECT_EQ(diag.message, "refused in start");
}

TEST_F(OpRunner, InlineAThrowInAContinuationIsTheOperationsError) {
  error_code ec;
  diagnostics diag;
  EXPECT_EQ(inline_run(fault::in_continuation, ec, diag), 0);
  EXPECT_EQ(ec, errc::aborted);
  EXPECT_EQ(diag.message, "the continuation failed");
}

TEST_F(OpRunner, InlineTheFirstEndCounts) {
  error_code ec;
  diagnostics diag;
  EXPECT_EQ(inline_run(fault::after_the_end, ec, diag), 42);
  EXPECT_FALSE(ec) << diag.message;
}

TEST_F(OpRunner, AsyncAThrowInAContinuationReachesTheCallersHandlerOnce) {
  asio::io_context io;
  diagnostics diag;
  int calls = 0;
  error_code got;
  async_run(io, fault::in_continuation, diag, [&](error_code ec, std::int64_t) {
    ++calls;
    got = ec;
  });
  EXPECT_NO_THROW(io.run());
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(got, errc::aborted);
  EXPECT_EQ(diag.message, "the continuation failed");
}

TEST_F(OpRunner, AsyncAThrowInStartIsDeliveredLaterNotInsideTheCall) {
  asio::io_context io;
  diagnostics diag;
  int calls = 0;
  error_code got;
  async_run(io, fault::in_start, diag, [&](error_code ec, std::int64_t) {
    ++calls;
    got = ec;
  });
  EXPECT_EQ(calls, 0) << "never inside the initiating call";
  io.run();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(got, errc::invalid_argument);
}

TEST_F(OpRunner, AsyncTheFirstEndCounts) {
  asio::io_context io;
  diagnostics diag;
  int calls = 0;
  std::int64_t got = 0;
  async_run(io, fault::after_the_end, diag, [&](error_code ec, std::int64_t v) {
    ++calls;
    EXPECT_FALSE(ec);
    got = v;
  });
  io.run();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(got, 42);
}

TEST_F(OpRunner, WhatTheCallersHandlerThrowsGoesOnToItsLoop) {
  asio::io_context io;
  diagnostics diag;
  int calls = 0;
  async_run(io, fault::none, diag, [&](error_code, std::int64_t) {
    ++calls;
    throw std::logic_error("the caller's handler failed");
  });
  EXPECT_THROW(io.run(), std::logic_error);
  EXPECT_EQ(calls, 1);
  // The loop runs on; nothing of the operation is left to run.
  io.restart();
  EXPECT_NO_THROW(io.run());
  EXPECT_EQ(calls, 1);
}

}  // namespace
