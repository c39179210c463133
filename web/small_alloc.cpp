// Small C++ allocations of the WebAssembly module come from their own arena, so that large
// buffers (tensor data, whole files) lie alone in the heap.
//
// Why: converting holds the input, then the converted tensors, frees those once they are
// written, and reads the written file back into one buffer as large as they were. wasm32
// has 4 GiB in all, so for a large file (a rank-128 FLUX.1 LoRA: 1.39 GB in, 2.19 GB out)
// that buffer must reuse the tensors' space. With one heap, the names, shapes and report
// rows made between the tensors stay alive between their freed buffers and cut that space
// into pieces none of which is large enough. Here every operator new of up to kMaxSmall
// bytes is served from size-class pages of an arena taken once at start-up; anything
// larger (and anything once the arena is full) goes to malloc as before.
//
// The module is single-threaded (no pthreads), so no locking.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace {

constexpr size_t kPage = size_t{256} << 10;   // a page serves one size class
constexpr size_t kArena = size_t{128} << 20;  // 512 pages
constexpr size_t kPages = kArena / kPage;
constexpr size_t kMaxSmall = kPage;
// Classes: 16, 32, …, 1024 bytes (0..63), then 2 KiB, 4 KiB, …, 256 KiB (64..71).
constexpr int kClasses = 72;

struct FreeBlock {
  FreeBlock* next;
};

struct Arena {
  uint8_t* base = nullptr;
  bool failed = false;
  size_t pages_used = 0;
  uint8_t page_class[kPages] = {};
  FreeBlock* free_list[kClasses] = {};
  uint8_t* bump[kClasses] = {};
  uint8_t* bump_end[kClasses] = {};
};

Arena& arena() {
  static Arena a;  // constant-initialised apart from base, which the first allocation sets
  return a;
}

int size_class(size_t n, size_t& block) {
  if (n <= 1024) {
    block = n == 0 ? 16 : (n + 15) & ~size_t{15};
    return static_cast<int>(block / 16) - 1;
  }
  block = 2048;
  int c = 64;
  while (block < n) {
    block <<= 1;
    ++c;
  }
  return c;
}

void* small_alloc(size_t n) {
  Arena& a = arena();
  if (n > kMaxSmall || a.failed) return nullptr;
  if (!a.base) {
    a.base = static_cast<uint8_t*>(std::aligned_alloc(kPage, kArena));
    if (!a.base) {
      a.failed = true;
      return nullptr;
    }
  }
  size_t block = 0;
  const int c = size_class(n, block);
  if (FreeBlock* f = a.free_list[c]) {
    a.free_list[c] = f->next;
    return f;
  }
  if (!a.bump[c] || a.bump[c] + block > a.bump_end[c]) {
    if (a.pages_used == kPages) return nullptr;  // full: malloc from now on
    uint8_t* page = a.base + a.pages_used * kPage;
    a.page_class[a.pages_used++] = static_cast<uint8_t>(c);
    a.bump[c] = page;
    a.bump_end[c] = page + kPage;
  }
  void* p = a.bump[c];
  a.bump[c] += block;
  return p;
}

// True when p was from the arena (and is now on its class's free list).
bool small_free(void* p) {
  Arena& a = arena();
  const auto* b = static_cast<uint8_t*>(p);
  if (!a.base || b < a.base || b >= a.base + kArena) return false;
  const int c = a.page_class[static_cast<size_t>(b - a.base) / kPage];
  auto* f = static_cast<FreeBlock*>(p);
  f->next = a.free_list[c];
  a.free_list[c] = f;
  return true;
}

void* allocate(size_t n) {
  if (void* p = small_alloc(n)) return p;
  return std::malloc(n == 0 ? 1 : n);
}

void release(void* p) {
  if (p && !small_free(p)) std::free(p);
}

}  // namespace

// Without exceptions (emscripten's default), a failed allocation aborts, as libc++'s own
// operator new does there; the JavaScript side reports it as running out of memory.
void* operator new(size_t n) {
  void* p = allocate(n);
  if (!p) std::abort();
  return p;
}
void* operator new[](size_t n) { return operator new(n); }
void* operator new(size_t n, const std::nothrow_t&) noexcept { return allocate(n); }
void* operator new[](size_t n, const std::nothrow_t&) noexcept { return allocate(n); }
void operator delete(void* p) noexcept { release(p); }
void operator delete[](void* p) noexcept { release(p); }
void operator delete(void* p, size_t) noexcept { release(p); }
void operator delete[](void* p, size_t) noexcept { release(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { release(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { release(p); }
