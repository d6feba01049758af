#include "control/agent_follower.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

#include "actors/http_client.hpp"
#include "actors/messages.hpp"
#include "actors/metrics_endpoint.hpp"
#include "caf/all.hpp"
#include "control/api_rules.hpp"
#include "control/resource.hpp"
#include "net/seam/assert.hpp"
#include "net/seam/crypto.hpp"
#include "net/seam/trace.hpp"
#include "net/wire/hex.hpp"

namespace drtp::control {

namespace {

using json = nlohmann::json;
using time_point = caf::actor_clock::time_point;
using ms = std::chrono::milliseconds;

using retry_atom = caf::atom_constant<caf::atom("fretry")>;
using resync_atom = caf::atom_constant<caf::atom("fresync")>;
using poll_atom = caf::atom_constant<caf::atom("fpoll")>;

/// DRTPServers the follower keeps from lists and watches (a fleet larger
/// than this is cut, said once).
constexpr size_t servers_max = 1024;

/// "host:port" -> parts; false if malformed.
bool split_address(const std::string& a, std::string& host, uint16_t& port) {
  auto colon = a.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == a.size() || a.size() > 255)
    return false;
  auto digits = a.substr(colon + 1);
  if (digits.size() > 5 || digits.find_first_not_of("0123456789") != std::string::npos)
    return false;
  auto n = std::stoul(digits);
  if (n == 0 || n > 65535)
    return false;
  host = a.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  port = static_cast<uint16_t>(n);
  return true;
}

/// One POP of a bootstrap answer or snapshot: {name, region, tunnelAddress,
/// publicAddress, verify}.
bool parse_pop_entry(const json& j, server& out) {
  if (!j.is_object() || !j.contains("name") || !j["name"].is_string()
      || !j.contains("tunnelAddress") || !j["tunnelAddress"].is_string())
    return false;
  out.meta.name = j["name"].get<std::string>();
  if (!valid_name(out.meta.name))
    return false;
  if (j.contains("region") && j["region"].is_string())
    out.spec.region = j["region"].get<std::string>();
  if (j.contains("publicAddress") && j["publicAddress"].is_string())
    out.spec.public_address = j["publicAddress"].get<std::string>();
  if (!split_address(j["tunnelAddress"].get<std::string>(), out.spec.tunnel_host,
                     out.spec.tunnel_port))
    return false;
  if (j.contains("verify") && j["verify"].is_object()) {
    const auto& v = j["verify"];
    if (v.contains("pin") && v["pin"].is_string())
      out.spec.pin = v["pin"].get<std::string>();
    if (v.contains("ca") && v["ca"].is_string())
      out.spec.ca_pem = v["ca"].get<std::string>();
  }
  out.status.ready = true;
  return !out.spec.pin.empty() || !out.spec.ca_pem.empty();
}

json pop_entry_json(const server& s) {
  json e;
  e["name"] = s.meta.name;
  e["region"] = s.spec.region;
  e["tunnelAddress"] = s.spec.tunnel_host + ":" + std::to_string(s.spec.tunnel_port);
  e["publicAddress"] = s.spec.public_address;
  json v = json::object();
  if (!s.spec.pin.empty())
    v["pin"] = s.spec.pin;
  if (!s.spec.ca_pem.empty())
    v["ca"] = s.spec.ca_pem;
  e["verify"] = v;
  return e;
}

/// What decides a dial: a change here is news for the agent.
std::string dial_key(const server& s) {
  return s.meta.name + " " + s.spec.region + " " + s.spec.tunnel_host + ":"
         + std::to_string(s.spec.tunnel_port) + " " + s.spec.pin + " "
         + std::to_string(s.spec.ca_pem.size());
}

/// What the follower knows at start: the service (serve) and POPs.
struct knowledge {
  bool has_service = false;
  std::string local_host;
  uint16_t local_port = 0;
  uint32_t tunnels = 2;
  std::vector<server> pops;
};

/// A bootstrap answer or a snapshot (the same shape); false if unusable.
bool parse_knowledge(const std::string& text, uint64_t bytes_max, knowledge& out,
                     std::string& err) {
  if (text.size() > bytes_max) {
    err = "over " + std::to_string(bytes_max) + " bytes";
    return false;
  }
  auto j = json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("pops") || !j["pops"].is_array()) {
    err = "not a JSON object with a list of POPs";
    return false;
  }
  if (j.contains("service") && j["service"].is_object()) {
    const auto& s = j["service"];
    if (s.contains("local") && s["local"].is_string()
        && split_address(s["local"].get<std::string>(), out.local_host, out.local_port))
      out.has_service = true;
    if (s.contains("tunnels") && s["tunnels"].is_number_unsigned())
      out.tunnels = std::clamp<uint32_t>(s["tunnels"].get<uint32_t>(), 1, tunnels_target_max);
  }
  for (const auto& e : j["pops"]) {
    if (out.pops.size() >= agent_pops_max)
      break;
    server s;
    if (parse_pop_entry(e, s))
      out.pops.push_back(std::move(s));
  }
  return true;
}

class agent_follower final : public caf::event_based_actor {
public:
  agent_follower(caf::actor_config& cfg, agent_follower_params p)
    : caf::event_based_actor(cfg), p_(std::move(p)) {
    DRTP_ASSERT(p_.retry_initial_ms > 0 && p_.retry_initial_ms <= p_.retry_max_ms,
                "the follower's backoff is bounded");
    DRTP_ASSERT(p_.poll_interval_ms > 0 && p_.resync_interval_ms > 0,
                "the follower's timers are positive");
    client_ = p_.agent.client;
  }

  const char* name() const override {
    return "drtp.agent_follower";
  }

  caf::behavior make_behavior() override {
    who_ = std::string(client_ ? "connect" : "serve") + "-follower#" + std::to_string(id());
    if (!p_.snapshot.empty()) {
      std::string err;
      knowledge k;
      if (parse_knowledge(p_.snapshot, p_.document_bytes_max, k, err) && !k.pops.empty())
        snapshot_ = std::move(k);
      else
        say("ignoring the saved state: " + (err.empty() ? "no POP in it" : err));
    }
    p_.snapshot.clear();
    send(this, retry_atom::value);
    return starting();
  }

private:
  // -- the two states ---------------------------------------------------------------

  /// Until the agent runs: bootstrap (serve) or list (connect), retried.
  caf::behavior starting() {
    return {
      [this](retry_atom) { start_fetch(); },
      [this](follower_agent_atom) { return agent_; },
      // The metrics endpoint asks the agent, which does not run yet.
      [](health_atom) {
        return health_report{false, "waiting for the control plane's list of POPs"};
      },
      [](sessions_atom) { return std::string("{}"); },
      [this](agent_set_identity& id) {
        // Renewed before the agent runs: it starts with the new one.
        p_.agent.client_cert_pem = std::move(id.cert_pem);
        p_.agent.client_key_pem = std::move(id.key_pem);
      },
      [this](http_watch_line&) {},
      [this](http_watch_ended&) {},
    };
  }

  caf::behavior running() {
    return {
      [this](retry_atom) {
        retry_pending_ = false;
        list_servers();
      },
      [this](resync_atom) {
        if (watching_) {
          send(p_.http, http_unwatch{watch_tag_});
          watching_ = false;
          list_servers();
        }
        delayed_send(this, real(p_.resync_interval_ms), resync_atom::value);
      },
      [this](poll_atom) { poll_agent(); },
      [this](http_watch_line& l) {
        if (watching_ && l.tag == watch_tag_)
          on_watch_line(l.line);
      },
      [this](http_watch_ended& e) {
        if (!watching_ || e.tag != watch_tag_)
          return;
        watching_ = false;
        trace("watch of drtpservers ended (" + std::to_string(e.status) + " " + e.what
              + "); listing again");
        schedule_retry();
      },
      [this](follower_agent_atom) { return agent_; },
      [this](agent_set_identity& id) { send(agent_, std::move(id)); },
      [this](health_atom x) { return delegate(agent_, x); },
      [this](sessions_atom x) { return delegate(agent_, x); },
    };
  }

  // -- start --------------------------------------------------------------------------

  void start_fetch() {
    std::string target = client_ ? std::string(api_base) + "/drtpservers"
                                 : std::string(api_base) + "/drtpconnections/"
                                     + p_.agent.service + "/bootstrap"
                                     + (p_.region.empty() ? "" : "?region=" + p_.region);
    request(p_.http, caf::infinite, http_fetch{"GET", target, {}, {}})
      .then([this](http::response& r) { on_start_answer(r); },
            [this](caf::error& e) { on_start_failed(describe_http_error(e), false); });
  }

  void on_start_answer(const http::response& r) {
    if (r.status != 200) {
      bool for_good = r.status == 401 || r.status == 403 || r.status == 404;
      on_start_failed("answered " + std::to_string(r.status) + ": " + status_message(r),
                      for_good);
      return;
    }
    knowledge k;
    std::string err;
    if (client_) {
      if (!read_list(r.body, err)) {
        on_start_failed("a list it could not read: " + err, false);
        return;
      }
      k.pops = ordered_ready();
    } else if (!parse_knowledge(r.body, p_.document_bytes_max, k, err)) {
      on_start_failed("a bootstrap answer it could not read: " + err, false);
      return;
    }
    if (k.pops.empty()) {
      on_start_failed("no ready POP yet", false);
      return;
    }
    say("signed in to the control plane; " + std::to_string(k.pops.size())
        + " ready POPs: " + names(k.pops));
    start_agent(std::move(k));
    if (!agent_)
      return; // it could not start: said so
    if (client_)
      start_watch();
    else
      list_servers();
  }

  void on_start_failed(const std::string& why, bool for_good) {
    if (snapshot_) {
      say("control plane: " + why + "; starting from the saved state ("
          + std::to_string(snapshot_->pops.size()) + " POPs: " + names(snapshot_->pops)
          + "); following it again once it answers");
      auto k = std::move(*snapshot_);
      snapshot_.reset();
      start_agent(std::move(k));
      schedule_retry();
      return;
    }
    if (for_good) {
      fatal("control plane: " + why);
      return;
    }
    auto delay = next_backoff();
    say("control plane: " + why + "; no saved state to start from; retrying in "
        + std::to_string(delay) + " ms");
    delayed_send(this, real(delay), retry_atom::value);
  }

  void start_agent(knowledge k) {
    DRTP_ASSERT(!agent_ && !k.pops.empty(), "the agent starts once, with POPs");
    auto ap = p_.agent;
    // The registry has the service: a POP that answers "unknown service"
    // has not applied it yet (or is cut off from the control plane), so
    // the agent keeps dialing it, sooner than a static config's minute.
    ap.stop_when_every_pop_rejects = false;
    ap.reject_set_aside_ms = std::min(ap.reject_set_aside_ms, p_.reject_retry_ms);
    if (!client_ && ap.local_port == 0) {
      if (!k.has_service) {
        fatal("the service's local address is unknown (give --local HOST:PORT)");
        return;
      }
      ap.local_host = k.local_host;
      ap.local_port = k.local_port;
    }
    local_host_ = ap.local_host;
    local_port_ = ap.local_port;
    service_tunnels_ = k.tunnels;
    if (ap.tunnels_target == 0)
      ap.tunnels_target = k.tunnels;
    ready_ = std::move(k.pops);
    ap.pops = endpoints(ready_);
    if (ap.pops.empty()) {
      fatal("no POP it can verify (a POP's verify.ca needs --ca here)");
      return;
    }
    sent_ = order_key(ready_);
    agent_ = spawn_agent(system(), std::move(ap));
    link_to(agent_);
    save();
    backoff_failures_ = 0;
    delayed_send(this, real(p_.poll_interval_ms), poll_atom::value);
    delayed_send(this, real(p_.resync_interval_ms), resync_atom::value);
    become(running());
  }

  // -- follow -------------------------------------------------------------------------

  void list_servers() {
    if (listing_)
      return;
    listing_ = true;
    request(p_.http, caf::infinite,
            http_fetch{"GET", std::string(api_base) + "/drtpservers", {}, {}})
      .then(
        [this](http::response& r) {
          listing_ = false;
          std::string err;
          if (r.status != 200) {
            trace("list of drtpservers answered " + std::to_string(r.status) + ": "
                  + status_message(r));
            schedule_retry();
          } else if (!read_list(r.body, err)) {
            trace("list of drtpservers unreadable: " + err);
            schedule_retry();
          } else {
            if (backoff_failures_ > 0)
              say("control plane answers again; following it");
            backoff_failures_ = 0;
            changed();
            start_watch();
          }
        },
        [this](caf::error& e) {
          listing_ = false;
          trace("list of drtpservers failed: " + describe_http_error(e));
          schedule_retry();
        });
  }

  void start_watch() {
    DRTP_ASSERT(!watching_, "one watch at a time");
    watching_ = true;
    ++watch_tag_;
    send(p_.http, http_watch{std::string(api_base) + "/drtpservers?watch=1&resourceVersion="
                               + std::to_string(rv_),
                             this, watch_tag_});
  }

  void schedule_retry() {
    if (retry_pending_ || listing_ || watching_)
      return;
    retry_pending_ = true;
    auto delay = next_backoff();
    if (backoff_failures_ == 3)
      say("control plane unreachable; keeping the " + std::to_string(ready_.size())
          + " POPs known and retrying (every " + std::to_string(delay) + " ms or so)");
    delayed_send(this, real(delay), retry_atom::value);
  }

  /// Bounded exponential backoff with jitter in [cap/2, cap].
  uint32_t next_backoff() {
    auto shift = std::min<uint32_t>(backoff_failures_, 16);
    ++backoff_failures_;
    uint64_t cap = std::min<uint64_t>(p_.retry_max_ms, uint64_t{p_.retry_initial_ms} << shift);
    return static_cast<uint32_t>(cap / 2 + p_.e.rng->uniform(cap / 2 + 1));
  }

  /// A list answer: replaces what is known of drtpservers.
  bool read_list(const std::string& body, std::string& err) {
    if (body.size() > p_.document_bytes_max) {
      err = "over " + std::to_string(p_.document_bytes_max) + " bytes";
      return false;
    }
    auto j = json::parse(body, nullptr, false);
    if (!j.is_object() || !j.contains("items") || !j["items"].is_array()) {
      err = "not a list";
      return false;
    }
    uint64_t rv = 0;
    if (j.contains("metadata") && j["metadata"].is_object()
        && j["metadata"].contains("resourceVersion")
        && j["metadata"]["resourceVersion"].is_string())
      rv = std::strtoull(j["metadata"]["resourceVersion"].get<std::string>().c_str(), nullptr,
                         10);
    std::map<std::string, server> all;
    for (const auto& item : j["items"]) {
      server s;
      std::string e;
      if (all.size() < servers_max && parse_server(item.dump(), s, e))
        all[s.meta.name] = std::move(s);
    }
    servers_ = std::move(all);
    rv_ = rv;
    return true;
  }

  void on_watch_line(const std::string& line) {
    auto j = json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("type") || !j["type"].is_string()
        || !j.contains("object") || !j["object"].is_object())
      return;
    auto type = j["type"].get<std::string>();
    const auto& obj = j["object"];
    if (obj.contains("metadata") && obj["metadata"].is_object()
        && obj["metadata"].contains("resourceVersion")
        && obj["metadata"]["resourceVersion"].is_string())
      rv_ = std::max<uint64_t>(
        rv_, std::strtoull(obj["metadata"]["resourceVersion"].get<std::string>().c_str(),
                           nullptr, 10));
    if (type == "BOOKMARK" || type == "ERROR")
      return; // an ERROR (410) ends the stream: http_watch_ended lists again
    server s;
    std::string err;
    if (!parse_server(obj.dump(), s, err))
      return;
    if (type == "DELETED")
      servers_.erase(s.meta.name);
    else if (servers_.size() < servers_max || servers_.count(s.meta.name))
      servers_[s.meta.name] = std::move(s);
    changed();
  }

  /// The ready POPs, nearest first.
  std::vector<server> ordered_ready() const {
    std::vector<server> ready;
    for (const auto& [name, s] : servers_)
      if (s.status.ready)
        ready.push_back(s);
    auto out = bootstrap_order(std::move(ready), p_.region);
    if (p_.region.empty()) {
      // By the round trips the agent measured; the never measured after.
      std::stable_sort(out.begin(), out.end(), [this](const server& a, const server& b) {
        return rtt_of(a.meta.name) < rtt_of(b.meta.name);
      });
    }
    if (out.size() > agent_pops_max)
      out.resize(agent_pops_max);
    return out;
  }

  uint32_t rtt_of(const std::string& name) const {
    auto i = rtt_.find(name);
    return i == rtt_.end() ? UINT32_MAX : i->second;
  }

  /// What is known changed: tell the agent if its list changed, persist.
  void changed() {
    auto next = ordered_ready();
    if (next.empty()) {
      if (!ready_.empty() && !said_none_ready_) {
        say("the control plane lists no ready POP; keeping the " + std::to_string(ready_.size())
            + " known");
        said_none_ready_ = true;
      }
      return;
    }
    said_none_ready_ = false;
    auto key = order_key(next);
    if (key == sent_)
      return;
    auto old_set = set_key(ready_);
    ready_ = std::move(next);
    sent_ = key;
    auto eps = endpoints(ready_);
    if (!eps.empty())
      send(agent_, agent_set_pops{std::move(eps)});
    if (set_key(ready_) != old_set) {
      say("POPs now: " + names(ready_));
      save();
    }
  }

  // -- the agent's tunnels: status and order ------------------------------------------

  void poll_agent() {
    delayed_send(this, real(p_.poll_interval_ms), poll_atom::value);
    if (!agent_)
      return;
    request(agent_, caf::infinite, agent_tunnels_atom::value)
      .then([this](agent_tunnels& t) { on_tunnels(t); }, [](caf::error&) {});
  }

  void on_tunnels(const agent_tunnels& t) {
    std::vector<std::string> up;
    for (const auto& x : t.tunnels)
      if (x.up)
        up.push_back(x.pop);
    std::sort(up.begin(), up.end());
    bool reorder = false;
    for (const auto& [name, rtt] : t.rtt_us) {
      auto old = rtt_of(name);
      // Only a marked change reorders: jitter must not churn the list.
      if (old == UINT32_MAX || rtt * 10ull < old * 7ull || rtt * 7ull > old * 10ull) {
        rtt_[name] = rtt;
        reorder = true;
      }
    }
    if (rtt_.size() > servers_max)
      rtt_.clear();
    if (reorder && p_.region.empty() && !servers_.empty())
      changed();
    if (!client_)
      maybe_report(up);
  }

  void maybe_report(const std::vector<std::string>& up) {
    auto now = p_.e.clock->now(clock());
    bool due = !reported_once_ || now - last_report_ >= ms(p_.status_interval_ms);
    bool news = up != reported_ && now - last_report_ >= ms(p_.status_min_interval_ms);
    if (reporting_ || !(due || news))
      return;
    reporting_ = true;
    last_report_ = now;
    reported_once_ = true;
    json st;
    st["status"]["agents"] = json::array({json{{"id", p_.agent.agent_id}, {"pops", up}}});
    request(p_.http, caf::infinite,
            http_fetch{"PUT",
                       std::string(api_base) + "/drtpconnections/" + p_.agent.service
                         + "/status",
                       {{"Content-Type", "application/json"}},
                       st.dump()})
      .then(
        [this, up](http::response& r) {
          reporting_ = false;
          if (r.status == 200) {
            reported_ = up;
          } else {
            trace("status report answered " + std::to_string(r.status) + ": "
                  + status_message(r));
          }
        },
        [this](caf::error& e) {
          reporting_ = false;
          trace("status report failed: " + describe_http_error(e));
        });
  }

  // -- helpers ------------------------------------------------------------------------

  std::vector<pop_endpoint> endpoints(const std::vector<server>& pops) {
    std::vector<pop_endpoint> out;
    for (const auto& s : pops) {
      pop_endpoint ep;
      ep.name = s.meta.name;
      ep.host = s.spec.tunnel_host;
      ep.port = s.spec.tunnel_port;
      ep.region = s.spec.region;
      if (!s.spec.pin.empty()) {
        auto tls = std::make_shared<net::tls_client_config>();
        auto hex = s.spec.pin.rfind("sha256:", 0) == 0 ? s.spec.pin.substr(7) : s.spec.pin;
        if (!net::from_hex(hex, tls->fingerprint_sha256)
            || tls->fingerprint_sha256.size() != 32) {
          warn_once(s.meta.name, "POP " + s.meta.name + ": its pin is malformed; not dialed");
          continue;
        }
        ep.tls = std::move(tls);
      } else if (!p_.agent.tls || p_.agent.tls->ca_file.empty()) {
        warn_once(s.meta.name, "POP " + s.meta.name
                                 + " is verified by a CA: give --ca FILE to dial it");
        continue;
      }
      out.push_back(std::move(ep));
    }
    return out;
  }

  void warn_once(const std::string& pop, const std::string& what) {
    if (warned_.size() < servers_max && warned_.insert(pop).second)
      say(what);
  }

  static std::string order_key(const std::vector<server>& pops) {
    std::string k;
    for (const auto& s : pops)
      k += dial_key(s) + "\n";
    return k;
  }

  static std::string set_key(std::vector<server> pops) {
    std::sort(pops.begin(), pops.end(),
              [](const server& a, const server& b) { return a.meta.name < b.meta.name; });
    return order_key(pops);
  }

  static std::string names(const std::vector<server>& pops) {
    std::string out;
    for (const auto& s : pops)
      out += (out.empty() ? "" : ", ") + s.meta.name
             + (s.spec.region.empty() ? "" : " (" + s.spec.region + ")");
    return out;
  }

  static std::string status_message(const http::response& r) {
    auto j = json::parse(r.body, nullptr, false);
    if (j.is_object() && j.contains("message") && j["message"].is_string())
      return net::escape_for_log(j["message"].get<std::string>().substr(0, 200));
    return net::escape_for_log(r.body.substr(0, 120));
  }

  void save() {
    if (!p_.save_snapshot)
      return;
    json out;
    if (!client_) {
      out["service"]["local"] = local_host_ + ":" + std::to_string(local_port_);
      out["service"]["tunnels"] = service_tunnels_;
    }
    out["pops"] = json::array();
    for (const auto& s : ready_)
      out["pops"].push_back(pop_entry_json(s));
    p_.save_snapshot(out.dump(2) + "\n");
  }

  net::host_clock::duration real(uint32_t delay_ms) const {
    return p_.e.clock->real_delay(ms(std::max<uint32_t>(delay_ms, 1)));
  }

  void trace(const std::string& what) {
    p_.e.trace->emit(p_.e.host, who_, what);
  }

  /// One line for the user (and the trace).
  void say(const std::string& what) {
    trace(what);
    auto to = p_.observer ? p_.observer : p_.agent.observer;
    if (to)
      send(to, agent_event{agent_event::note, what, 0});
  }

  void fatal(const std::string& what) {
    trace(what);
    auto to = p_.observer ? p_.observer : p_.agent.observer;
    if (to)
      send(to, agent_event{agent_event::fatal, what, 0});
    quit();
  }

  void on_exit() override {
    if (watching_ && p_.http)
      send(p_.http, http_unwatch{watch_tag_});
    agent_ = nullptr;
    p_ = {};
  }

  agent_follower_params p_;
  bool client_ = false;
  std::string who_;
  caf::actor agent_;
  std::optional<knowledge> snapshot_;
  std::string local_host_;
  uint16_t local_port_ = 0;
  uint32_t service_tunnels_ = 2;
  /// Every DRTPServer as last listed or watched, by name (bounded).
  std::map<std::string, server> servers_;
  uint64_t rv_ = 0;
  /// The POPs the agent was last given, in order, and their dial key.
  std::vector<server> ready_;
  std::string sent_;
  bool said_none_ready_ = false;
  std::map<std::string, uint32_t> rtt_;
  std::set<std::string> warned_;
  bool listing_ = false;
  bool watching_ = false;
  bool retry_pending_ = false;
  uint64_t watch_tag_ = 0;
  uint32_t backoff_failures_ = 0;
  bool reporting_ = false;
  bool reported_once_ = false;
  time_point last_report_{};
  std::vector<std::string> reported_;
};

} // namespace

caf::actor spawn_agent_follower(caf::actor_system& sys, agent_follower_params p) {
  return sys.spawn<agent_follower>(std::move(p));
}

} // namespace drtp::control
