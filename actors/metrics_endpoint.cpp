#include "actors/metrics_endpoint.hpp"

#include <chrono>

#include "actors/http_server.hpp"
#include "caf/all.hpp"

namespace drtp {

namespace {

http::response text_response(int status, std::string body,
                             const char* type = "text/plain; charset=utf-8") {
  http::response r;
  r.status = status;
  r.headers.emplace_back("Content-Type", type);
  r.headers.emplace_back("Cache-Control", "no-store");
  r.body = std::move(body);
  return r;
}

class metrics_handler final : public caf::event_based_actor {
public:
  metrics_handler(caf::actor_config& cfg, metrics_endpoint_params p)
    : caf::event_based_actor(cfg), p_(std::move(p)) {
  }

  const char* name() const override {
    return "drtp.metrics_endpoint";
  }

  caf::behavior make_behavior() override {
    http_server_params hp;
    hp.e = p_.e;
    hp.host = p_.host;
    hp.port = p_.port;
    hp.handler = this;
    hp.observer = p_.observer;
    hp.limits.header_bytes_max = 8 * 1024;
    hp.limits.headers_max = 32;
    hp.limits.body_bytes_max = 0;
    hp.connections_max = p_.connections_max;
    hp.request_timeout_ms = 5000;
    hp.idle_timeout_ms = 30000;
    hp.handler_timeout_ms = p_.probe_timeout_ms + 1000;
    hp.name = "metrics";
    server_ = spawn_http_server(system(), std::move(hp));
    // The server goes with the handler, and the handler with the server.
    link_to(server_);
    return {
      [this](http_call& c) -> caf::result<http::response> { return on_call(c); },
    };
  }

  void on_exit() override {
    server_ = nullptr;
    p_ = {};
  }

private:
  caf::result<http::response> on_call(const http_call& c) {
    const auto& req = c.req;
    if (req.method != "GET" && req.method != "HEAD") {
      auto r = text_response(405, "only GET\n");
      r.headers.emplace_back("Allow", "GET, HEAD");
      return r;
    }
    if (req.path == "/metrics")
      return text_response(200, p_.e.stats->render(),
                           "text/plain; version=0.0.4; charset=utf-8");
    if (req.path == "/healthz")
      return text_response(200, "ok\n");
    if (req.path == "/readyz") {
      if (!p_.probe)
        return text_response(200, "ready\n");
      return ask_probe<health_report>(health_atom::value, "not ready: ", [](const health_report& h) {
        return text_response(h.ready ? 200 : 503,
                             (h.ready ? "ready: " : "not ready: ") + h.detail + "\n");
      });
    }
    if (req.path == "/debug/sessions") {
      if (!p_.probe)
        return text_response(200, "{}\n", "application/json");
      return ask_probe<std::string>(sessions_atom::value, "", [](const std::string& json) {
        return text_response(200, json + "\n", "application/json");
      });
    }
    return text_response(404, "not found: try /metrics, /healthz, /readyz, /debug/sessions\n");
  }

  /// Asks the probe (within probe_timeout_ms) and answers with what
  /// `make` makes of its reply; no reply in time: 503, `prefix` and why.
  template <class Answer, class Atom, class Make>
  caf::result<http::response> ask_probe(Atom question, const char* prefix, Make make) {
    auto rp = make_response_promise<http::response>();
    std::string late = std::string(prefix) + "no answer from the process\n";
    request(p_.probe, std::chrono::milliseconds(p_.probe_timeout_ms), question)
      .then([rp, make](const Answer& answer) mutable { rp.deliver(make(answer)); },
            [rp, late](const caf::error&) mutable { rp.deliver(text_response(503, late)); });
    return rp;
  }

  metrics_endpoint_params p_;
  caf::actor server_;
};

} // namespace

caf::actor spawn_metrics_endpoint(caf::actor_system& sys, metrics_endpoint_params p) {
  return sys.spawn<metrics_handler>(std::move(p));
}

} // namespace drtp
