#include "net/seam/trace.hpp"

namespace drtp::net {

tracer::~tracer() = default;

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
