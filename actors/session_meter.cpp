#include "actors/session_meter.hpp"

namespace drtp {

const char* to_string(session_end e) noexcept {
  switch (e) {
    case session_end::done:
      return "done";
    case session_end::reset:
      return "reset";
    case session_end::local_failed:
      return "local_failed";
    case session_end::idle:
      return "idle";
    case session_end::resume_timeout:
      return "resume_timeout";
    case session_end::cut:
      return "cut";
  }
  return "cut";
}

session_meter::session_meter(const env& e, std::string service, const char* path,
                             const char* role, std::string id, int64_t now_ms)
  : m_(*e.stats), service_(std::move(service)), path_(path),
    active_(m_.gauge(net::metric::sessions_active, {service_, path_})),
    to_service_(m_.counter(net::metric::service_bytes_total,
                          {service_, path_, "to_service"})),
    from_service_(m_.counter(net::metric::service_bytes_total,
                            {service_, path_, "from_service"})),
    table_(e.sessions), facts_(table_->open(std::move(id), service_, path, role, now_ms)) {
  active_.add(1);
  m_.counter(net::metric::sessions_opened_total, {service_, path_}).add();
}

session_meter::~session_meter() {
  close(session_end::cut);
}

void session_meter::close(session_end why) {
  if (closed_)
    return;
  closed_ = true;
  table_->close(facts_);
  active_.add(-1);
  m_.counter(net::metric::sessions_closed_total, {service_, path_, to_string(why)})
    .add();
}

} // namespace drtp
