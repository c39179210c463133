// Force-included in the WebAssembly build only (web/wasm-deps.cmake): C++20 library pieces
// that the libc++ of Debian's emscripten 3.1.6 lacks, from the compiler's builtins. The
// sources use the standard names; a newer libc++ defines __cpp_lib_* and this adds nothing.
#pragma once
#include <version>

#if !defined(__cpp_lib_bit_cast)
#include <type_traits>
namespace std {
template <class To, class From>
  requires(sizeof(To) == sizeof(From) && is_trivially_copyable_v<To> && is_trivially_copyable_v<From>)
constexpr To bit_cast(const From& from) noexcept {
  return __builtin_bit_cast(To, from);
}
}  // namespace std
#endif

// std::vector's operator<=> (a defaulted <=> of a struct holding a vector needs it).
#if !defined(__cpp_lib_three_way_comparison)
#include <algorithm>
#include <compare>
#include <utility>
#include <vector>
namespace std {
template <class T, class A>
constexpr auto operator<=>(const vector<T, A>& a, const vector<T, A>& b) -> decltype(declval<const T&>() <=> declval<const T&>()) {
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i)
    if (auto c = a[i] <=> b[i]; c != 0) return c;
  return a.size() <=> b.size();
}
}  // namespace std
#endif
