// drtp-pop's config file from any text: load_config either returns a config
// or throws cli::error, a line that names the file; nothing else escapes.

#include <unistd.h>

#include <cstring>
#include <fstream>
#include <set>
#include <string>

#include "cli/error.hpp"
#include "net/wire/handshake.hpp"
#include "pop/config.hpp"
#include "tests/fuzz/fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 16 * 1024)
    return 0;
  // load_config reads a file: one per process, rewritten for each input.
  static const std::string path = "/tmp/drtp-fuzz-pop-config-"
                                  + std::to_string(getpid()) + ".yaml";
  {
    std::ofstream out{path, std::ios::binary | std::ios::trunc};
    out.write(reinterpret_cast<const char*>(data), static_cast<long>(size));
  }
  try {
    auto cfg = drtp::pop::load_config(path);
    // What the POP relies on once the file is accepted.
    FUZZ_CHECK(!cfg.services.empty());
    std::set<std::string> names;
    for (auto& s : cfg.services) {
      FUZZ_CHECK(!s.name.empty() && s.name.size() <= 128);
      FUZZ_CHECK(names.insert(s.name).second);
      FUZZ_CHECK(s.public_key.size() == drtp::net::public_key_bytes);
      FUZZ_CHECK(s.is_public || !s.allow.empty());
    }
    names.clear();
    for (auto& p : cfg.principals) {
      FUZZ_CHECK(!p.name.empty() && p.name.size() <= 128);
      FUZZ_CHECK(names.insert(p.name).second);
      FUZZ_CHECK(p.public_key.size() == drtp::net::public_key_bytes);
    }
  } catch (const drtp::cli::error& e) {
    FUZZ_CHECK(std::strstr(e.what(), path.c_str()) != nullptr);
  }
  return 0;
}
