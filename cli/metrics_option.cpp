#include "cli/metrics_option.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "actors/http_server.hpp"
#include "actors/metrics_endpoint.hpp"
#include "caf/all.hpp"
#include "cli/args.hpp"
#include "net/process_metrics.hpp"

namespace drtp::cli {

caf::actor start_metrics(caf::actor_system& sys, const env& e, const std::string& host_port,
                         const caf::actor& probe, const char* program) {
  metrics_endpoint_params mp;
  parse_host_port(host_port, "--metrics", mp.host, mp.port);
  net::install_process_metrics(*e.stats, e.trace);
  mp.e = e;
  mp.probe = probe;
  caf::scoped_actor self{sys};
  mp.observer = self;
  auto endpoint = spawn_metrics_endpoint(sys, std::move(mp));
  std::string failure;
  self->receive(
    [&](const http_listening& l) {
      std::printf("%s: metrics on http://%s:%u/metrics\n", program,
                  host_port.substr(0, host_port.rfind(':')).c_str(), l.port);
      std::fflush(stdout);
    },
    [&](const http_listen_failed& f) { failure = f.what; },
    caf::after(std::chrono::seconds(10)) >> [&] { failure = "no answer in 10 s"; });
  if (!failure.empty()) {
    // Actors run already (the probe is one): no unwinding through them.
    std::fprintf(stderr, "%s: error: --metrics %s: %s\n", program, host_port.c_str(),
                 failure.c_str());
    std::fflush(nullptr);
    std::_Exit(2);
  }
  return endpoint;
}

} // namespace drtp::cli
