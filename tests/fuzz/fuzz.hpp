#pragma once
// What every fuzz harness shares. A harness defines LLVMFuzzerTestOneInput;
// under clang it links libFuzzer (scripts/fuzz.sh), under g++ it links
// replay_main.cpp and runs its committed corpus as a ctest test, so the
// build keeps working where clang is absent.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

/// A property of the code under test failed: stop here, with a stack, so
/// the fuzzer saves the input.
#define FUZZ_CHECK(condition)                                                  \
  do {                                                                         \
    if (!(condition)) {                                                        \
      std::fprintf(stderr, "fuzz check failed: %s at %s:%d\n", #condition,    \
                   __FILE__, __LINE__);                                        \
      std::abort();                                                            \
    }                                                                          \
  } while (false)

/// Cuts input into pieces of 1..256 bytes, the sizes taken from the input's
/// own first bytes, so the fuzzer explores every split of a byte stream.
class fuzz_splitter {
public:
  fuzz_splitter(const uint8_t* data, size_t size) {
    // Up to 8 size bytes, then the stream itself.
    sizes_n_ = size < 9 ? 0 : 8;
    sizes_ = data;
    data_ = data + sizes_n_;
    size_ = size - sizes_n_;
  }

  /// The next piece; false when the stream is used up.
  bool next(const uint8_t*& p, size_t& n) {
    if (pos_ >= size_)
      return false;
    size_t want = sizes_n_ == 0 ? size_ : size_t{sizes_[turn_++ % sizes_n_]} + 1;
    n = want < size_ - pos_ ? want : size_ - pos_;
    p = data_ + pos_;
    pos_ += n;
    return true;
  }

private:
  const uint8_t* sizes_ = nullptr;
  size_t sizes_n_ = 0;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  size_t pos_ = 0;
  size_t turn_ = 0;
};

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
