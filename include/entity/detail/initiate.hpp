// How memory and vector_store turn an asio completion token into a call of one of their
// compiled start_ functions, and the one way the library's sources reach their private state.
#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <type_traits>
#include <utility>

#include "entity/error.hpp"

namespace entity::detail {

/// Starts `(self.*start)(diag, handler, args...)` for the completion signature Sig: the one
/// place where a token becomes a type-erased handler.
template <class Token, class Self, class Sig, class... Args>
auto initiate(Token&& token, const Self& self,
              void (Self::*start)(diagnostics*, boost::asio::any_completion_handler<Sig>, Args...)
                  const,
              diagnostics* diag, std::type_identity_t<Args>... args) {
  return boost::asio::async_initiate<Token, Sig>(
      [self, start](auto h, diagnostics* d, Args... a) {
        (self.*start)(d, boost::asio::any_completion_handler<Sig>(std::move(h)), std::move(a)...);
      },
      token, diag, std::move(args)...);
}

/// What the library's own sources may see of a public class's internals: its shared state.
/// Each class with internals names this struct its friend; nothing else does.
struct access {
  template <class T>
  static const auto& shared(const T& x) noexcept {
    return x.shared_;
  }
  /// A T made through its private constructor (vector_writes, for its transaction's body).
  template <class T, class... A>
  static T make(A&&... a) {
    return T(std::forward<A>(a)...);
  }
  /// A class's private nested type `state`. Named in a member function's type, not in the
  /// alias itself: clang (14) checks the access of a member alias template's target where the
  /// alias is used, outside this friend, and refuses it.
  template <class T>
  static auto state_type() -> std::type_identity<typename T::state>;  // never defined
  template <class T>
  using state_of = typename decltype(state_type<T>())::type;
};

/// The type of a class's shared state (a private member type), found without naming it.
template <class T>
using shared_state_t =
    typename std::remove_cvref_t<decltype(access::shared(std::declval<const T&>()))>::element_type;

}  // namespace entity::detail
