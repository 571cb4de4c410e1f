// A program that only knows entity-db through its installed package.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <entity/entity.hpp>
#include <iostream>

int main() {
  auto infra = std::make_shared<entity::sqlite_infrastructure>(entity::sqlite_params{});
  infra->startup();
  entity::memory mem{entity::database(infra)};
  mem.store("greeting", {{"text", "hello"}});

  boost::asio::io_context io;
  std::string seen;
  boost::asio::co_spawn(
      io,
      [&]() -> boost::asio::awaitable<void> {
        auto v = co_await mem.async_load("greeting", boost::asio::use_awaitable);
        seen = v ? (*v)["text"].get<std::string>() : "missing";
      },
      boost::asio::detached);
  io.run();
  infra->shutdown();
  if (seen != "hello") return 1;
  std::cout << "consumer ok\n";
  return 0;
}
