// Every metric family a DRTP process exports, in one place: the registry
// (net/seam/metrics), the README's list and the Grafana dashboard check
// (tests/test_metrics) read this. Names follow Prometheus' conventions: the
// drtp_ prefix, the unit last, _total on counters; labels come from bounded
// sets (services and POPs from configuration, reasons from the code), never
// a visitor's address.

#include "net/seam/metrics.hpp"

namespace drtp::net {

const std::vector<metric_spec>& metric_catalog() {
  using k = metric_kind;
  static const std::vector<metric_spec> catalog = {
    {metric::pop_tunnels_up, "drtp_pop_tunnels_up", k::gauge,
     "Tunnels up at this POP, by service and kind (agent or client).",
     {"service", "kind"}},
    {metric::pop_tunnel_logins_total, "drtp_pop_logins_total", k::counter,
     "Tunnel logins at this POP by kind and result: ok, or the reject reason "
     "(bad_proof, unknown_service, unknown_principal, not_authorized, "
     "bad_certificate, bad_version, draining, protocol_error).",
     {"kind", "result"}},
    {metric::auth_failures_total, "drtp_pop_auth_failures_total", k::counter,
     "Logins that failed to authenticate (a wrong proof or certificate, an "
     "unknown service or principal), by reason.",
     {"reason"}},
    {metric::handshakes_failed_total, "drtp_pop_handshakes_failed_total",
     k::counter,
     "Tunnel handshakes that ended before a verdict, by reason (timeout, "
     "no_hello, evicted, overlimit).",
     {"reason"}},
    {metric::audit_decisions_total, "drtp_audit_decisions_total", k::counter,
     "Authorization decisions written to the audit log, by decision (allow "
     "or deny).",
     {"decision"}},
    {metric::visitors_refused_total, "drtp_pop_visitors_refused_total",
     k::counter,
     "Public visitors and patch-panel streams refused at this POP, by "
     "service and reason (no_tunnel, source_not_allowed, principal_not_allowed, "
     "limit, draining).",
     {"service", "reason"}},
    {metric::sessions_active, "drtp_sessions_active", k::gauge,
     "Sessions open now, by service and path (public or patch_panel).",
     {"service", "path"}},
    {metric::sessions_opened_total, "drtp_sessions_opened_total", k::counter,
     "Sessions opened, by service and path.", {"service", "path"}},
    {metric::sessions_closed_total, "drtp_sessions_closed_total", k::counter,
     "Sessions closed, by service, path and reason (done, reset, "
     "local_failed, idle, resume_timeout, cut).",
     {"service", "path", "reason"}},
    {metric::service_bytes_total, "drtp_service_bytes_total", k::counter,
     "Payload bytes carried, by service, path and direction (to_service: "
     "from visitors toward the service; from_service: the replies).",
     {"service", "path", "direction"}},
    {metric::tunnels_up, "drtp_tunnels_up", k::gauge,
     "Tunnels this agent or client holds up, by service and POP.",
     {"service", "pop"}},
    {metric::tunnels_wanted, "drtp_tunnels_wanted", k::gauge,
     "Tunnels this agent or client means to hold (K), by service.",
     {"service"}},
    {metric::tunnel_failovers_total, "drtp_tunnel_failovers_total", k::counter,
     "Tunnels lost while up (the POP died, drained or cut the link), each "
     "then replaced, by service.",
     {"service"}},
    {metric::tunnel_restore_seconds, "drtp_tunnel_restore_seconds",
     k::histogram,
     "From the moment fewer than K tunnels were up to K up again, by service.",
     {"service"}},
    {metric::tunnel_rtt_seconds, "drtp_tunnel_rtt_seconds", k::histogram,
     "Tunnel round-trip times (heartbeat ping to pong), by service and POP.",
     {"service", "pop"}},
    {metric::resumes_total, "drtp_patch_panel_resumes_total", k::counter,
     "Patch-panel sessions resumed on a new stream after the old one was "
     "lost, by service.",
     {"service"}},
    {metric::resent_bytes_total, "drtp_patch_panel_resent_bytes_total",
     k::counter,
     "Bytes sent again after a resume (what the peer had not confirmed), by "
     "service.",
     {"service"}},
    {metric::resume_stall_seconds, "drtp_patch_panel_stall_seconds",
     k::histogram,
     "How long a patch-panel session had no stream, from loss to resumed, "
     "by service.",
     {"service"}},
    {metric::http_responses_total, "drtp_http_responses_total", k::counter,
     "HTTP responses sent, by server (control: the control plane's API; "
     "metrics: this endpoint) and status class (2xx, 4xx, 5xx).",
     {"server", "code"}},
    {metric::write_queue_bytes, "drtp_write_queue_bytes", k::gauge,
     "Bytes queued for writing on this process's sockets, all of them.", {}},
    {metric::log_lines_dropped_total, "drtp_log_lines_dropped_total",
     k::counter, "Log lines dropped by the rate limit.", {}},
    {metric::metric_label_sets_overflow_total,
     "drtp_metric_label_sets_overflow_total", k::counter,
     "Samples folded into the _overflow label set: a family had "
     "label_sets_per_family_max label sets already.",
     {}},
  };
  return catalog;
}

} // namespace drtp::net
