#include "net/seam/trace.hpp"

namespace drtp::net {

tracer::~tracer() = default;

std::string escape_for_log(const std::string& text) {
  static const char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f || c == '\\') {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

namespace {

class null_tracer final : public tracer {
public:
  void emit(const std::string&, const std::string&,
            const std::string&) override {
  }
};

} // namespace

std::shared_ptr<tracer> make_null_tracer() {
  return std::make_shared<null_tracer>();
}

} // namespace drtp::net
