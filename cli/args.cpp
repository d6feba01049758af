#include "cli/args.hpp"

#include <string>

#include "net/loop_coordinator.hpp"
#include "net/seam/assert.hpp"

namespace drtp::cli {

args::args(int argc, char** argv, int first) {
  for (int i = first; i < argc; ++i)
    words_.emplace_back(argv[i]);
  used_.assign(words_.size(), false);
}

std::optional<std::string> args::value(const std::string& name) {
  std::optional<std::string> result;
  for (size_t i = 0; i < words_.size(); ++i) {
    if (used_[i])
      continue;
    auto& w = words_[i];
    if (w == name) {
      if (i + 1 >= words_.size())
        throw error("option " + name + " needs a value");
      used_[i] = used_[i + 1] = true;
      result = words_[i + 1];
      ++i;
    } else if (w.rfind(name + "=", 0) == 0) {
      used_[i] = true;
      result = w.substr(name.size() + 1);
    }
  }
  return result;
}

std::vector<std::string> args::values(const std::string& name) {
  std::vector<std::string> out;
  for (size_t i = 0; i < words_.size(); ++i) {
    if (used_[i])
      continue;
    if (words_[i] == name) {
      if (i + 1 >= words_.size())
        throw error("option " + name + " needs a value");
      used_[i] = used_[i + 1] = true;
      out.push_back(words_[++i]);
    } else if (words_[i].rfind(name + "=", 0) == 0) {
      used_[i] = true;
      out.push_back(words_[i].substr(name.size() + 1));
    }
  }
  return out;
}

bool args::flag(const std::string& name) {
  bool found = false;
  for (size_t i = 0; i < words_.size(); ++i) {
    if (!used_[i] && words_[i] == name) {
      used_[i] = true;
      found = true;
    }
  }
  return found;
}

std::vector<std::string> args::positional() {
  std::vector<std::string> out;
  for (size_t i = 0; i < words_.size(); ++i) {
    if (!used_[i] && words_[i].rfind("-", 0) != 0) {
      used_[i] = true;
      out.push_back(words_[i]);
    }
  }
  return out;
}

void args::finish() {
  for (size_t i = 0; i < words_.size(); ++i)
    if (!used_[i])
      throw error("unknown option '" + words_[i] + "' (see --help)");
}

void parse_host_port(const std::string& s, const std::string& what,
                     std::string& host, uint16_t& port) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size())
    throw error(what + " must be HOST:PORT, got '" + s + "'");
  host = s.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  auto p = s.substr(colon + 1);
  // Digits only: strtoul would read " +0" as 0, a random port, and wrap
  // "-1" to a large number.
  bool digits = !p.empty() && p.size() <= 5
                && p.find_first_not_of("0123456789") == std::string::npos;
  auto v = digits ? std::stoul(p) : 0ul;
  if (!digits || v > 65535)
    throw error(what + " has a bad port '" + p + "'");
  port = static_cast<uint16_t>(v);
}

uint32_t parse_uint(const std::string& text, const std::string& what,
                    uint32_t min, uint32_t max, const std::string& unit) {
  DRTP_ASSERT(min <= max, "an option's range is not empty");
  // Digits only: strtoul alone would take "", " 5", "+5" and wrap "-1".
  bool digits = !text.empty() && text.size() <= 10
                && text.find_first_not_of("0123456789") == std::string::npos;
  auto v = digits ? std::stoull(text) : 0ull;
  if (!digits || v < min || v > max)
    throw error(what + " must be " + std::to_string(min) + "-" + std::to_string(max)
                + " " + unit + ", got '" + text + "'");
  return static_cast<uint32_t>(v);
}

uint32_t busy_poll_us(args& a) {
  auto v = a.value("--busy-poll-us");
  return v ? parse_uint(*v, "--busy-poll-us", 0, net::busy_poll_us_max,
                        "microseconds")
           : net::busy_poll_us_default;
}

} // namespace drtp::cli
