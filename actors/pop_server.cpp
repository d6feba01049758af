#include "actors/pop_server.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <unordered_map>

#include "actors/messages.hpp"
#include "actors/metrics_endpoint.hpp"
#include "net/seam/assert.hpp"
#include "net/seam/crypto.hpp"
#include "net/wire/cidr.hpp"
#include "net/wire/frame.hpp"
#include "actors/pop_tunnel.hpp"
#include "actors/stream_limits.hpp"
#include "caf/all.hpp"

namespace drtp {

namespace {

class pop_server_actor final : public caf::event_based_actor {
public:
  pop_server_actor(caf::actor_config& cfg, pop_params p)
    : caf::event_based_actor(cfg),
      p_(std::move(p)),
      admission_(p_.admission),
      by_source_({p_.visitors_per_source_max, p_.visitor_opens_per_source_per_s,
                  p_.visitor_opens_per_source_burst},
                 p_.limited_keys_max),
      // Services come and go with reloads: room for as many keys as sources.
      by_service_({p_.visitors_per_service_max, 0, 0}, p_.limited_keys_max),
      by_principal_({p_.streams_per_principal_max, p_.stream_opens_per_principal_per_s,
                     p_.stream_opens_per_principal_burst},
                    p_.limited_keys_max) {
    auth_ = make_auth_db(p_.services, p_.principals, p_.client_ca_pem);
    cidrs_ = make_cidrs(p_.services);
  }

  /// Each service's allow_cidr, parsed (index as p_.services). The config
  /// loaders validated them; an entry that still fails is dropped with a
  /// trace, never widening: a set whose every entry failed admits nobody.
  std::vector<net::cidr_set> make_cidrs(const std::vector<service_config>& services) {
    std::vector<net::cidr_set> out(services.size());
    for (size_t i = 0; i < services.size(); ++i) {
      for (auto& text : services[i].allow_cidr) {
        net::cidr c;
        std::string why;
        if (net::parse_cidr(text, c, &why))
          out[i].entries.push_back(c);
        else
          trace("service '" + services[i].name + "': " + why + " (ignored)");
      }
      if (!services[i].allow_cidr.empty() && out[i].entries.empty())
        out[i].entries.push_back(nobody());
    }
    return out;
  }

  /// A block no parseable source lies in (an IPv6 /128 of a multicast
  /// address no TCP peer has).
  static net::cidr nobody() {
    net::cidr c;
    net::parse_cidr("ff00::/128", c, nullptr);
    return c;
  }

  const std::string& gateway_of(size_t i) const {
    return p_.services[i].gateway.empty() ? p_.services[i].name : p_.services[i].gateway;
  }

  bool source_allowed(size_t i, const std::string& host) const {
    return i < cidrs_.size() && cidrs_[i].contains(host);
  }

  /// One audit line per power of two gateway refusals: a scan is told, not
  /// written line by line (and each line is bounded: names are <= 128 bytes,
  /// a source is an address).
  void audit_gateway_refusal(const std::string& text) {
    count_audit(false);
    ++refused_gateway_;
    if ((refused_gateway_ & (refused_gateway_ - 1)) == 0)
      p_.e.trace->audit(p_.e.host,
                        text + " (" + std::to_string(refused_gateway_)
                          + " refused by gateway rules so far)",
                        true);
  }

  static std::shared_ptr<const auth_db>
  make_auth_db(const std::vector<service_config>& services,
               const std::vector<principal_config>& principals,
               const std::string& client_ca_pem) {
    auto db = std::make_shared<auth_db>();
    db->client_ca_pem = client_ca_pem;
    for (auto& s : services) {
      db->service_keys[s.name] = s.public_key;
      db->allow[s.name] = s.allow;
      if (!s.revoked_serials.empty() || s.revoked_before_unix_s != 0)
        db->service_revocations[s.name] = {s.revoked_serials, s.revoked_before_unix_s};
    }
    for (auto& pr : principals)
      db->principals[pr.name] = pr;
    return db;
  }

  const char* name() const override {
    return "drtp.pop";
  }

  caf::behavior make_behavior() override {
    who_ = "pop#" + std::to_string(id());
    // Tag 0 is the tunnel listener, tag i+1 the public port of service i.
    // Always asks for a client certificate, CA or not: a CA may come with a
    // later pop_reconfigure (the control plane's follower), and a link that
    // has none logs in by secret as before.
    net::listen_req tunnels{0, p_.tunnel_host, p_.tunnel_port, true};
    tunnels.request_client_cert = true;
    send(p_.e.io, tunnels);
    for (auto& s : p_.services)
      if (s.is_public) {
        listen_public(s);
        ++listeners_wanted_;
      }
    services_.resize(p_.services.size());
    set_down_handler([this](caf::down_msg& dm) { on_down(dm); });
    return {
      [this](net::listening& ev) { on_listening(ev); },
      [this](net::listen_failed& ev) {
        if (ev.tag != 0 && (ready_sent_ || !p_.public_listen_failure_fatal))
          return on_public_listen_failed(ev);
        trace(ev.what);
        if (p_.observer)
          send(p_.observer, pop_failed{ev.what});
        quit();
      },
      [this](net::accepted& ev) {
        if (ev.listener == tunnel_listener_)
          on_tunnel_link(ev);
        else
          on_visitor(ev);
      },
      [this](tunnel_up& ev) { on_tunnel_up(ev); },
      [this](tunnel_cert_renewed& ev) { on_cert_renewed(ev); },
      [this](auth_failed& ev) {
        admission_.on_failure(ev.peer_host, p_.e.clock->now(clock()));
      },
      [this](attempt_atom) { on_attempt(); },
      [this](tunnel_load& ev) { on_tunnel_load(ev); },
      [this](drain_atom) { start_drain(); },
      [this](pop_drain_watch& w) { drain_watch_ = std::move(w.who); },
      [this](client_stream& ev) { on_client_stream(ev); },
      [this](stream_slot_released& ev) { on_released(ev); },
      [this](grace_atom) {
        uint32_t left = 0;
        for (auto& s : services_)
          for (auto& t : s.tunnels)
            left += t.streams;
        trace("drain grace period over; cutting " + std::to_string(left)
              + " session(s)");
        finish_drain(left);
      },
      [this](status_atom, report_atom) { return status_report(); },
      [this](status_atom) { return current_status(); },
      // -- the metrics endpoint (actors/metrics_endpoint) --------------------------
      [this](health_atom) { return health(); },
      [this](sessions_atom) { return sessions_json(); },
      [this](pop_reconfigure& rc) { return reconfigure(rc); },
    };
  }

private:
  struct tunnel_entry {
    caf::actor tunnel;
    uint32_t streams = 0; // as last reported, plus visitors handed since
    std::string agent_id;
    std::string cert_pem; // logged in by it (checked on reload); empty: secret
  };

  struct service_state {
    net::listener_id listener = 0;
    std::vector<tunnel_entry> tunnels;
    size_t next = 0; // rotates the start among equally loaded tunnels
  };

  /// serving -> draining -> drained (and the server quits).
  enum class phase : uint8_t { serving, draining, drained };

  void enter(phase to) {
    DRTP_ASSERT((phase_ == phase::serving && to == phase::draining)
                  || (phase_ == phase::draining && to == phase::drained),
                "a POP goes serving -> draining -> drained, each once");
    phase_ = to;
  }

  static std::chrono::milliseconds ms(uint32_t x) {
    return std::chrono::milliseconds(x);
  }

  void trace(const std::string& what) {
    p_.e.trace->emit(p_.e.host, who_, what);
  }

  size_t find_service(const std::string& name) const {
    for (size_t i = 0; i < p_.services.size(); ++i)
      if (p_.services[i].name == name)
        return i;
    return p_.services.size();
  }

  /// Tag 0 is the tunnel listener; every public listen gets a fresh tag
  /// naming its service (services come and go with reloads).
  void listen_public(const service_config& s) {
    auto tag = ++last_listen_tag_;
    listen_tags_[tag] = s.name;
    send(p_.e.io, net::listen_req{tag, s.public_host, s.public_port, false});
  }

  void on_listening(const net::listening& ev) {
    if (ev.tag == 0) {
      tunnel_listener_ = ev.id;
      ready_.tunnel_port = ev.port;
    } else {
      auto name = listen_tags_[ev.tag];
      listen_tags_.erase(ev.tag);
      auto i = find_service(name);
      if (i == services_.size() || !p_.services[i].is_public || services_[i].listener != 0) {
        send(p_.e.io, net::stop_listen_req{ev.id}); // reloaded away meanwhile
        return;
      }
      services_[i].listener = ev.id;
      ready_.public_ports[name] = ev.port;
      by_listener_[ev.id] = i;
      if (ready_sent_)
        trace("service '" + name + "' public on " + p_.services[i].public_host + ":"
              + std::to_string(ev.port));
    }
    count_listener();
  }

  /// A public port taken (or refused): the service is served without it
  /// (patch panel only) and the rest of the POP serves on; the next
  /// reconfigure tries it again (a service without a listener listens anew).
  void on_public_listen_failed(const net::listen_failed& ev) {
    auto name = listen_tags_[ev.tag];
    listen_tags_.erase(ev.tag);
    auto i = find_service(name);
    if (i < services_.size() && p_.services[i].is_public && services_[i].listener == 0)
      trace("service '" + name + "' has no public listener (port "
            + std::to_string(p_.services[i].public_port) + "): " + ev.what
            + "; served without it (patch panel only), tried again on the next change");
    count_listener();
  }

  /// One of the listeners asked for at start answered (open or failed).
  void count_listener() {
    if (!ready_sent_ && ++listening_ == listeners_wanted_) {
      ready_sent_ = true;
      publish_tunnel_gauges(); // 0 for each service, before any tunnel
      trace("ready: tunnels on port " + std::to_string(ready_.tunnel_port)
            + ", " + std::to_string(p_.services.size()) + " service(s)");
      if (p_.observer)
        send(p_.observer, ready_);
    }
  }

  /// Ready: every listener asked for at start answered, and serving.
  health_report health() const {
    health_report h;
    h.ready = ready_sent_ && phase_ == phase::serving;
    h.detail = phase_ != phase::serving
                 ? std::string("draining")
                 : ready_sent_ ? "tunnel port " + std::to_string(ready_.tunnel_port) + ", "
                                   + std::to_string(p_.services.size()) + " service(s)"
                               : std::string("opening listeners");
    return h;
  }

  /// What the POP holds, per service: its agents' tunnels (and the streams
  /// each carries), patch-panel clients, public sessions. No visitor
  /// address: the endpoint is for dashboards too.
  std::string sessions_json() const {
    std::map<std::string, size_t> visitors, clients;
    for (auto& [conn, v] : visitors_)
      ++visitors[v.first];
    for (auto& [addr, who] : client_of_)
      ++clients[who.second];
    std::string out = std::string("{\"role\":\"pop\",\"draining\":")
                      + (phase_ == phase::serving ? "false" : "true") + ",\"services\":[";
    for (size_t i = 0; i < services_.size(); ++i) {
      auto& name = p_.services[i].name;
      if (i > 0)
        out += ',';
      out += "{\"service\":" + json_quote(name) + ",\"public_port\":";
      auto port = ready_.public_ports.find(name);
      out += port == ready_.public_ports.end() ? std::string("null") : std::to_string(port->second);
      out += ",\"tunnels\":[";
      for (size_t j = 0; j < services_[i].tunnels.size(); ++j) {
        auto& t = services_[i].tunnels[j];
        out += std::string(j > 0 ? "," : "") + "{\"agent\":" + json_quote(t.agent_id)
               + ",\"streams\":" + std::to_string(t.streams) + "}";
      }
      out += "],\"clients\":" + std::to_string(clients[name])
             + ",\"public_sessions\":" + std::to_string(visitors[name]) + "}";
    }
    out += "],\"sessions\":"
           + p_.e.sessions->json(p_.e.clock->unix_ms(clock()), net::debug_sessions_listed_max) + "}";
    return out;
  }

  /// How many of the services' sets and the client list hold `a`.
  size_t sets_holding(const caf::actor_addr& a) const {
    size_t n = 0;
    for (auto& s : services_)
      for (auto& t : s.tunnels)
        n += t.tunnel.address() == a ? 1 : 0;
    for (auto& c : client_tunnels_)
      n += c.address() == a ? 1 : 0;
    return n;
  }

  /// Why a certificate tunnel may no longer stay, with the config of now;
  /// empty: it may.
  std::string cert_refusal(const std::string& cert_pem, bool client, const std::string& name,
                           const std::string& service) {
    net::crypto::certificate_info info;
    auto why = auth_->check_certificate(*p_.e.crypto, cert_pem, client, name,
                                        p_.e.clock->unix_ms(clock()) / 1000, info);
    if (why.empty() && client && !auth_->allowed(name, service))
      why = "not on the allow list of service '" + service + "'";
    if (why.empty() && find_service(service) == p_.services.size())
      why = "unknown service";
    return why;
  }

  bool still_admitted(const tunnel_up& ev) {
    if (!ev.cert_pem.empty())
      return cert_refusal(ev.cert_pem, ev.client, ev.client ? ev.agent_id : ev.service,
                          ev.service)
        .empty();
    if (ev.client) {
      auto pr = auth_->principals.find(ev.agent_id);
      return pr != auth_->principals.end() && auth_->allowed(ev.agent_id, ev.service)
             && net::equal_ct(pr->second.public_key, ev.public_key)
             && source_allowed(find_service(ev.service), ev.peer);
    }
    auto k = auth_->service_keys.find(ev.service);
    return k != auth_->service_keys.end() && net::equal_ct(k->second, ev.public_key);
  }

  /// Later reloads check the renewed certificate, not the one it logged
  /// in with (which may be revoked after its renewal, or expire sooner).
  void on_cert_renewed(tunnel_cert_renewed& ev) {
    auto addr = caf::actor_cast<caf::actor_addr>(current_sender());
    if (auto c = client_cert_.find(addr); c != client_cert_.end()) {
      c->second = std::move(ev.cert_pem);
      return;
    }
    for (auto& st : services_)
      for (auto& t : st.tunnels)
        if (t.tunnel.address() == addr) {
          t.cert_pem = std::move(ev.cert_pem);
          return;
        }
  }

  void on_tunnel_up(tunnel_up& ev) {
    auto handshakes_ended = handshaking_.erase(ev.tunnel.address());
    DRTP_ASSERT(handshakes_ended == 1, "a tunnel reports up once, at the end of its handshake");
    admission_.remove_link(ev.tunnel.id()); // gone already if evicted meanwhile
    DRTP_ASSERT(sets_holding(ev.tunnel.address()) == 0,
                "a tunnel joins a service's set or the client list once, when up");
    // Its handshake began before a reload that changed or removed its key
    // (or, for a client, its right to the service): what it proved no longer
    // admits it.
    if (!still_admitted(ev)) {
      trace("closed a tunnel of " + ev.agent_id + " for service '" + ev.service
            + "': its key or access changed while it logged in");
      send_exit(ev.tunnel, caf::exit_reason::kill);
      return;
    }
    if (ev.client) {
      client_tunnels_.push_back(ev.tunnel);
      client_of_[ev.tunnel.address()] = {ev.agent_id, ev.service};
      // The key it proved (see recheck_clients).
      client_key_[ev.tunnel.address()] = ev.public_key;
      client_source_[ev.tunnel.address()] = ev.peer;
      if (!ev.cert_pem.empty())
        client_cert_[ev.tunnel.address()] = ev.cert_pem;
      monitor(ev.tunnel);
      if (phase_ == phase::draining)
        send(ev.tunnel, drain_atom::value);
      p_.e.stats->gauge(net::metric::pop_tunnels_up, {ev.service, "client"}).add(1);
      return;
    }
    auto i = find_service(ev.service);
    if (i == services_.size()) {
      send_exit(ev.tunnel, caf::exit_reason::kill);
      return;
    }
    if (phase_ == phase::draining) {
      send(ev.tunnel, drain_atom::value);
    }
    services_[i].tunnels.push_back(tunnel_entry{ev.tunnel, 0, ev.agent_id, ev.cert_pem});
    monitor(ev.tunnel);
    report_status();
    trace("service '" + ev.service + "' now has "
          + std::to_string(services_[i].tunnels.size())
          + " tunnel(s); agent " + ev.agent_id + " from " + ev.peer);
  }

  /// A tunnel got its hello and asks for a challenge: now, later, or never
  /// (the source's prefix spent its attempts).
  void on_attempt() {
    auto sender = caf::actor_cast<caf::actor>(current_sender());
    const std::string* host = sender ? admission_.host_of(sender.id()) : nullptr;
    if (!host)
      return; // evicted meanwhile: evict_atom is on its way
    auto v = admission_.on_attempt(*host, p_.e.clock->now(clock()));
    if (!v.allowed)
      send(sender, overlimit_atom::value);
    else if (v.delay_ms == 0)
      send(sender, delayed_atom::value);
    else
      delayed_send(sender, p_.e.clock->real_delay(ms(v.delay_ms)), delayed_atom::value);
  }

  void on_tunnel_load(const tunnel_load& ev) {
    auto src = caf::actor_cast<caf::actor_addr>(current_sender());
    size_t entries = 0;
    for (auto& s : services_)
      for (auto& t : s.tunnels)
        if (t.tunnel.address() == src) {
          t.streams = ev.streams;
          ++entries;
        }
    DRTP_ASSERT(entries <= 1, "a tunnel's load is counted in one entry of one service");
    if (phase_ == phase::draining)
      check_drained();
  }

  /// For operators (the admin port): one line per service.
  std::string status_report() const {
    std::string out = std::string("pop ")
                      + (phase_ == phase::serving ? "serving" : "draining") + ", "
                      + std::to_string(client_tunnels_.size())
                      + " patch-panel client tunnel(s), "
                      + std::to_string(handshaking_.size()) + " handshake(s)\n";
    for (size_t i = 0; i < services_.size(); ++i) {
      uint32_t streams = 0;
      std::string agents;
      for (auto& t : services_[i].tunnels) {
        streams += t.streams;
        agents += (agents.empty() ? "" : ",") + t.agent_id;
      }
      out += "service " + p_.services[i].name + ": "
             + std::to_string(services_[i].tunnels.size()) + " tunnel(s), "
             + std::to_string(streams) + " stream(s), agents [" + agents + "]"
             + (p_.services[i].is_public ? "" : ", private") + "\n";
    }
    return out;
  }

  // -- reload (SIGHUP) ------------------------------------------------------------

  /// Closes every tunnel of service state `st`; how many.
  /// Closes every tunnel of service state `st` that logged in by the
  /// secret (certificate tunnels never proved the key); how many.
  uint32_t cut_tunnels(service_state& st) {
    uint32_t n = 0;
    auto& ts = st.tunnels;
    for (auto& t : ts)
      if (t.cert_pem.empty()) {
        send_exit(t.tunnel, caf::exit_reason::user_shutdown);
        ++n;
      }
    // on_down finds them in no set: nothing to do there
    ts.erase(std::remove_if(ts.begin(), ts.end(),
                            [](const tunnel_entry& t) { return t.cert_pem.empty(); }),
             ts.end());
    return n;
  }

  /// Agent tunnels whose certificate is now revoked, expired, of another
  /// CA, or whose service is gone: closed at once (the bound is the
  /// reconfigure's arrival here).
  uint32_t recheck_cert_tunnels() {
    uint32_t n = 0;
    for (size_t i = 0; i < services_.size(); ++i) {
      auto& ts = services_[i].tunnels;
      auto& name = p_.services[i].name;
      ts.erase(std::remove_if(ts.begin(), ts.end(),
                              [&](const tunnel_entry& t) {
                                if (t.cert_pem.empty())
                                  return false;
                                auto why = cert_refusal(t.cert_pem, false, name, name);
                                if (why.empty())
                                  return false;
                                trace("closed the tunnel of agent " + t.agent_id
                                      + " for service '" + name + "': " + why);
                                p_.e.trace->audit(p_.e.host,
                                                  "certificate of agent " + t.agent_id
                                                    + " for service '" + name
                                                    + "' no longer admitted: " + why,
                                                  true);
                                send_exit(t.tunnel, caf::exit_reason::user_shutdown);
                                ++n;
                                return true;
                              }),
               ts.end());
    }
    return n;
  }

  /// Tells every agent of removed service state `st` to go (goaway, then
  /// the link closes); how many.
  uint32_t send_away(service_state& st) {
    auto n = static_cast<uint32_t>(st.tunnels.size());
    for (auto& t : st.tunnels)
      send(t.tunnel, service_gone_atom::value);
    st.tunnels.clear(); // on_down finds them in no set: nothing to do there
    return n;
  }

  void stop_public(service_state& st) {
    if (st.listener == 0)
      return;
    send(p_.e.io, net::stop_listen_req{st.listener});
    by_listener_.erase(st.listener);
    st.listener = 0;
  }

  static bool same_port(const service_config& a, const service_config& b) {
    return a.is_public == b.is_public && a.public_host == b.public_host
           && a.public_port == b.public_port;
  }

  std::string reconfigure(pop_reconfigure& rc) {
    if (phase_ != phase::serving)
      return "not reloaded: the POP is draining";
    std::vector<service_state> next(rc.services.size());
    std::string added, removed, rekeyed, moved;
    uint32_t cut = 0;
    auto note = [](std::string& list, const std::string& name) {
      list += (list.empty() ? "" : ", ") + name;
    };
    // Names through an index, not a linear search per service: with 10 000
    // services that search made one reload cost about a second.
    std::unordered_map<std::string, size_t> now_at, wanted;
    for (size_t i = 0; i < p_.services.size(); ++i)
      now_at.emplace(p_.services[i].name, i);
    for (size_t j = 0; j < rc.services.size(); ++j)
      wanted.emplace(rc.services[j].name, j);
    for (size_t j = 0; j < rc.services.size(); ++j) {
      auto& want = rc.services[j];
      auto at = now_at.find(want.name);
      auto i = at == now_at.end() ? p_.services.size() : at->second;
      if (i == p_.services.size()) {
        note(added, want.name);
        continue;
      }
      next[j] = std::move(services_[i]);
      if (!net::equal_ct(p_.services[i].public_key, want.public_key)) {
        note(rekeyed, want.name);
        cut += cut_tunnels(next[j]);
      }
      if (!same_port(p_.services[i], want)) {
        note(moved, want.name);
        stop_public(next[j]);
      }
    }
    for (size_t i = 0; i < p_.services.size(); ++i) {
      if (wanted.count(p_.services[i].name))
        continue;
      note(removed, p_.services[i].name);
      stop_public(services_[i]);
      cut += send_away(services_[i]);
      ready_.public_ports.erase(p_.services[i].name);
    }
    p_.services = std::move(rc.services);
    p_.principals = std::move(rc.principals);
    p_.client_ca_pem = std::move(rc.client_ca_pem);
    services_ = std::move(next);
    by_listener_.clear();
    for (size_t i = 0; i < services_.size(); ++i) {
      if (services_[i].listener != 0)
        by_listener_[services_[i].listener] = i;
      else if (p_.services[i].is_public)
        listen_public(p_.services[i]);
    }
    auth_ = make_auth_db(p_.services, p_.principals, p_.client_ca_pem);
    cidrs_ = make_cidrs(p_.services);
    cut += recheck_cert_tunnels();
    uint32_t ended_streams = 0, kept_streams = 0;
    cut += recheck_clients(ended_streams, kept_streams);
    uint32_t ended_visitors = 0, kept_visitors = 0;
    recheck_visitors(ended_visitors, kept_visitors);
    report_status();
    auto part = [](const char* what, const std::string& list) {
      return list.empty() ? std::string{} : std::string("; ") + what + ": " + list;
    };
    auto text = std::to_string(p_.services.size()) + " service(s)" + part("added", added)
                + part("removed", removed) + part("new key", rekeyed)
                + part("new public port", moved) + "; " + std::to_string(cut)
                + " tunnel(s) closed; gateway rules: " + std::to_string(ended_visitors)
                + " visitor(s) and " + std::to_string(ended_streams)
                + " client tunnel(s) ended, " + std::to_string(kept_visitors)
                + " visitor(s) and " + std::to_string(kept_streams)
                + " client tunnel(s) no longer allowed kept open (end_open_sessions false)";
    trace("config reloaded: " + text);
    return text;
  }

  /// Client tunnels (one per principal and service) after a reload: one
  /// whose principal is gone, revoked or rekeyed, or whose service is gone,
  /// is closed; one whose principal or source the service's new rules no
  /// longer allow is closed only when the service says end_open_sessions
  /// (`ended`), else kept (`kept`) and its new streams refused.
  uint32_t recheck_clients(uint32_t& ended, uint32_t& kept) {
    uint32_t cut = 0;
    for (auto& [addr, who] : client_of_) {
      auto& [principal, service] = who;
      auto pr = auth_->principals.find(principal);
      auto i = find_service(service);
      // Who it is still stands (its certificate, or the key it proved);
      // whether it may still use the service is the allow list's and
      // allow_cidr's, and end_open_sessions says what a refusal ends.
      auto cert = client_cert_.find(addr);
      bool identity_ok = i < p_.services.size()
                         && (cert != client_cert_.end()
                               ? cert_refusal(cert->second, true, principal, service).empty()
                               : pr != auth_->principals.end() && !pr->second.revoked
                                   && net::equal_ct(pr->second.public_key, client_key_[addr]));
      if (identity_ok && auth_->allowed(principal, service)
          && source_allowed(i, client_source_[addr]))
        continue;
      if (identity_ok && !p_.services[i].end_open_sessions) {
        ++kept;
        continue;
      }
      if (identity_ok)
        ++ended;
      for (auto& c : client_tunnels_)
        if (c.address() == addr) {
          send_exit(c, caf::exit_reason::user_shutdown);
          ++cut;
        }
    }
    return cut;
  }

  /// Public visitors after a reload: one whose source its service's new
  /// allow_cidr refuses is ended when the service says end_open_sessions,
  /// else left alone.
  void recheck_visitors(uint32_t& ended, uint32_t& kept) {
    for (auto& [conn, v] : visitors_) {
      auto i = find_service(v.first);
      if (i >= p_.services.size() || source_allowed(i, v.second))
        continue; // a removed service's visitors went with its tunnels
      if (!p_.services[i].end_open_sessions) {
        ++kept;
        continue;
      }
      ++ended;
      audit_gateway_refusal("gateway '" + gateway_of(i) + "' ended visitor " + v.second
                            + " of service '" + v.first
                            + "': its source is outside the new allow_cidr");
      send(p_.e.io, net::abort_req{conn});
    }
  }

  void on_tunnel_link(const net::accepted& ev) {
    // Unauthenticated links cost an actor each until their handshake ends:
    // bound them per source and in all, and when the table is full make the
    // most represented network give up its oldest link, not the newcomer.
    auto v = admission_.on_link(ev.peer_host);
    if (!v.admit) {
      send(p_.e.io, net::abort_req{ev.id});
      return;
    }
    if (v.evict)
      for (auto& a : handshaking_)
        if (a.id() == v.victim) {
          send(caf::actor_cast<caf::actor>(a), evict_atom::value);
          break;
        }
    pop_tunnel_params tp;
    tp.e = p_.e;
    tp.parent = this;
    tp.conn = ev.id;
    tp.peer_host = ev.peer_host;
    tp.channel_binding = ev.channel_binding;
    tp.peer_cert_pem = ev.peer_cert_pem;
    tp.auth = auth_;
    tp.hello_deadline_ms = p_.admission.hello_deadline_ms;
    auto t = spawn_pop_tunnel(system(), std::move(tp));
    handshaking_.insert(t.address());
    admission_.add_link(t.id(), ev.peer_host);
    monitor(t);
  }

  void on_visitor(const net::accepted& ev) {
    auto it = by_listener_.find(ev.listener);
    if (it == by_listener_.end()) {
      send(p_.e.io, net::abort_req{ev.id});
      return;
    }
    auto& s = services_[it->second];
    if (!source_allowed(it->second, ev.peer_host)) {
      audit_gateway_refusal("gateway '" + gateway_of(it->second) + "' refused visitor "
                            + ev.peer_host + " of service '" + p_.services[it->second].name
                            + "': source outside allow_cidr");
      count_refused(p_.services[it->second].name, "source_not_allowed");
      send(p_.e.io, net::abort_req{ev.id});
      return;
    }
    if (s.tunnels.empty()) {
      trace("refused visitor " + ev.peer_host + ":" + std::to_string(ev.peer_port)
            + " of service '" + p_.services[it->second].name
            + "': no tunnel is up");
      count_refused(p_.services[it->second].name, "no_tunnel");
      send(p_.e.io, net::abort_req{ev.id});
      return;
    }
    // Fewest active streams first; ties rotate so equal tunnels share.
    size_t n = s.tunnels.size();
    size_t best = s.next++ % n;
    for (size_t k = 1; k < n; ++k) {
      size_t j = (best + k) % n;
      if (s.tunnels[j].streams < s.tunnels[best].streams)
        best = j;
    }
    auto admitted = admit_visitor(ev, p_.services[it->second].name);
    if (!admitted) {
      send(p_.e.io, net::abort_req{ev.id});
      return;
    }
    auto& t = s.tunnels[best];
    ++t.streams; // until the tunnel reports, count this visitor
    send(t.tunnel, attach_visitor{ev.id, ev.peer_host + ":" + std::to_string(ev.peer_port),
                                  std::move(admitted)});
  }

  /// A visitor counts against its source and its service; over either
  /// limit it is refused at once (a reset costs nothing downstream).
  stream_slot_ptr admit_visitor(const net::accepted& ev, const std::string& service) {
    auto now = p_.e.clock->now(clock());
    // Per client: an IPv4 address or an IPv6 /64, or a visitor from one /64
    // would have 2^64 limits to spend.
    auto source = admission::source_of(ev.peer_host);
    auto v = by_source_.try_open(source, now);
    if (v == open_limiter::verdict::admitted) {
      v = by_service_.try_open(service, now);
      if (v == open_limiter::verdict::admitted)
      {
        visitors_[ev.id] = {service, ev.peer_host};
        return std::make_shared<stream_slot>(
          address(), std::vector<std::pair<limit_kind, std::string>>{
                       {limit_kind::source, source},
                       {limit_kind::service, service},
                       {limit_kind::visitor, std::to_string(ev.id)}});
      }
      by_source_.release(source);
    }
    count_refused(service, "limit");
    ++refused_visitors_;
    // One line per power of two: a burst is told, not logged line by line.
    if ((refused_visitors_ & (refused_visitors_ - 1)) == 0)
      trace("refused visitor " + ev.peer_host + " of service '" + service
            + "': " + to_string(v) + " (" + std::to_string(refused_visitors_)
            + " visitor(s) refused so far)");
    return nullptr;
  }

  void on_released(const stream_slot_released& ev) {
    for (auto& [kind, key] : ev.keys)
      switch (kind) {
        case limit_kind::source: by_source_.release(key); break;
        case limit_kind::service: by_service_.release(key); break;
        case limit_kind::principal: by_principal_.release(key); break;
        case limit_kind::visitor: visitors_.erase(std::stoull(key)); break;
      }
  }

  /// The patch panel: a principal's stream goes to an agent of its service;
  /// a resume goes to the agent that holds the session.
  void on_client_stream(client_stream& ev) {
    auto i = find_service(ev.service);
    // The gateway's rules of now: a reload since the tunnel's login may have
    // taken the principal's (or its org's) access or its source's away.
    if (i < services_.size()) {
      std::string why;
      const char* reason = "principal_not_allowed";
      if (!auth_->allowed(ev.open.principal, ev.service)) {
        why = auth_->refusal_reason(ev.open.principal, ev.service);
      } else {
        reason = "source_not_allowed";
        auto src = client_source_.find(ev.tunnel.address());
        if (src == client_source_.end() || !source_allowed(i, src->second))
          why = "source " + (src == client_source_.end() ? std::string("?") : src->second)
                + " is outside the gateway's allow_cidr";
      }
      if (!why.empty()) {
        audit_gateway_refusal("gateway '" + gateway_of(i) + "' refused service '"
                              + ev.service + "': " + why);
        count_refused(ev.service, reason);
        send(ev.tunnel, set_owner{ev.sid, nullptr,
                                  static_cast<uint32_t>(net::rst_code::refused)});
        return;
      }
    }
    tunnel_entry* best = nullptr;
    if (i < services_.size() && phase_ == phase::serving)
      for (auto& t : services_[i].tunnels) {
        if (ev.open.resume && t.agent_id != ev.open.agent_id)
          continue;
        if (!best || t.streams < best->streams)
          best = &t;
      }
    if (best) {
      auto v = by_principal_.try_open(ev.open.principal, p_.e.clock->now(clock()));
      if (v != open_limiter::verdict::admitted) {
        // One audit line per power of two refused: a burst is told, not
        // written line by line.
        ++refused_streams_;
        count_refused(ev.service, "limit");
        count_audit(false);
        if ((refused_streams_ & (refused_streams_ - 1)) == 0)
          p_.e.trace->audit(p_.e.host,
                            "principal '" + ev.open.principal + "' to service '"
                              + ev.service + "': stream refused, " + to_string(v) + " ("
                              + std::to_string(refused_streams_) + " refused so far)",
                            true);
        send(ev.tunnel, set_owner{ev.sid, nullptr,
                                  static_cast<uint32_t>(net::rst_code::refused)});
        return;
      }
    }
    if (!best) {
      // The client's tunnel is up: its principal proved its secret.
      count_refused(ev.service, phase_ == phase::serving ? "no_tunnel" : "draining");
      count_audit(false);
      p_.e.trace->audit(p_.e.host,
                        "principal '" + ev.open.principal + "' to service '"
                          + ev.service + "': no agent here"
                          + (ev.open.resume ? " for the resume" : ""),
                        true);
      send(ev.tunnel, set_owner{ev.sid, nullptr,
                                static_cast<uint32_t>(net::rst_code::refused)});
      return;
    }
    ++best->streams;
    count_audit(true);
    p_.e.trace->audit(p_.e.host,
                      std::string(ev.open.resume ? "resumed" : "opened")
                        + " session for principal '" + ev.open.principal
                        + "' to service '" + ev.service + "' via agent "
                        + best->agent_id,
                      true);
    auto admitted = std::make_shared<stream_slot>(
      address(),
      std::vector<std::pair<limit_kind, std::string>>{{limit_kind::principal,
                                                       ev.open.principal}});
    send(best->tunnel, attach_splice{ev.tunnel, ev.conn, ev.sid, ev.open, std::move(admitted)});
  }

  void on_down(const caf::down_msg& dm) {
    DRTP_ASSERT(sets_holding(dm.source) + handshaking_.count(dm.source) <= 1,
                "a tunnel is handshaking, a client, or in one service's set, never two");
    handshaking_.erase(dm.source);
    admission_.remove_link(dm.source.id());
    client_tunnels_.erase(std::remove_if(client_tunnels_.begin(),
                                         client_tunnels_.end(),
                                         [&](const caf::actor& a) {
                                           return a.address() == dm.source;
                                         }),
                          client_tunnels_.end());
    if (auto c = client_of_.find(dm.source); c != client_of_.end()) {
      p_.e.stats->gauge(net::metric::pop_tunnels_up, {c->second.second, "client"}).add(-1);
      client_of_.erase(c);
    }
    client_key_.erase(dm.source);
    client_source_.erase(dm.source);
    client_cert_.erase(dm.source);
    for (size_t i = 0; i < services_.size(); ++i) {
      auto& ts = services_[i].tunnels;
      auto before = ts.size();
      ts.erase(std::remove_if(ts.begin(), ts.end(),
                              [&](const tunnel_entry& t) {
                                return t.tunnel.address() == dm.source;
                              }),
               ts.end());
      if (ts.size() != before)
        trace("service '" + p_.services[i].name + "' lost a tunnel; "
              + std::to_string(ts.size()) + " left");
    }
    report_status();
    if (phase_ == phase::draining)
      check_drained();
  }

  pop_status current_status() const {
    pop_status st;
    st.draining = phase_ != phase::serving;
    for (size_t i = 0; i < services_.size(); ++i) {
      auto& ids = st.agents[p_.services[i].name];
      for (auto& t : services_[i].tunnels)
        ids.push_back(t.agent_id);
    }
    return st;
  }

  void report_status() {
    publish_tunnel_gauges();
    if (p_.observer)
      send(p_.observer, current_status());
  }

  /// drtp_pop_tunnels_up of agents from the services' sets of now (after
  /// every change to them, so the gauge never drifts from what the POP
  /// holds); a service gone from the configuration shows 0. Clients are
  /// counted as they come and go (there may be many more of them).
  void publish_tunnel_gauges() {
    std::map<std::string, int64_t> up;
    for (auto& name : gauged_services_)
      up[name] = 0;
    for (size_t i = 0; i < services_.size(); ++i)
      up[p_.services[i].name] = static_cast<int64_t>(services_[i].tunnels.size());
    for (auto& [name, n] : up) {
      p_.e.stats->gauge(net::metric::pop_tunnels_up, {name, "agent"}).set(n);
      if (gauged_services_.size() < net::metrics::label_sets_per_family_max)
        gauged_services_.insert(name);
    }
  }

  /// A refused visitor or patch-panel stream, by a reason from a fixed set.
  void count_refused(const std::string& service, const char* reason) {
    p_.e.stats->counter(net::metric::visitors_refused_total, {service, reason}).add();
  }

  void count_audit(bool allowed) {
    p_.e.stats->counter(net::metric::audit_decisions_total, {allowed ? "allow" : "deny"})
      .add();
  }

  /// The drain's watcher first (bounded: drain_notify_timeout_ms), then
  /// the listeners close. Meanwhile the phase says draining already: new
  /// tunnels get drain, reloads are refused, the status says so.
  void start_drain() {
    if (phase_ != phase::serving)
      return;
    enter(phase::draining);
    if (!drain_watch_)
      return close_for_drain();
    request(drain_watch_, ms(p_.drain_notify_timeout_ms), drain_atom::value)
      .then(
        [this](const std::string& what) {
          trace("drain: " + what);
          close_for_drain();
        },
        [this](caf::error&) {
          trace("drain: the control plane's follower did not answer in "
                + std::to_string(p_.drain_notify_timeout_ms) + " ms; closing anyway");
          close_for_drain();
        });
  }

  void close_for_drain() {
    closed_for_drain_ = true;
    trace("draining: no new visitors or agents; sessions get "
          + std::to_string(p_.drain_grace_ms) + " ms to finish");
    // Closed listeners make new visitors fail fast and try another POP.
    send(p_.e.io, net::stop_listen_req{tunnel_listener_});
    for (auto& c : client_tunnels_)
      send(c, drain_atom::value);
    for (auto& s : services_) {
      if (s.listener != 0)
        send(p_.e.io, net::stop_listen_req{s.listener});
      for (auto& t : s.tunnels)
        send(t.tunnel, drain_atom::value);
    }
    delayed_send(this, p_.e.clock->real_delay(ms(p_.drain_grace_ms)), grace_atom::value);
    report_status();
    check_drained();
  }

  void check_drained() {
    if (!closed_for_drain_)
      return; // the watcher first: an idle POP would exit before it is told
    for (auto& s : services_)
      for (auto& t : s.tunnels)
        if (t.streams > 0)
          return;
    finish_drain(0);
  }

  void finish_drain(uint32_t cut) {
    if (phase_ == phase::drained)
      return;
    enter(phase::drained);
    trace("drained" + (cut > 0 ? ", " + std::to_string(cut) + " session(s) cut"
                                : std::string{", every session finished"}));
    if (p_.observer)
      send(p_.observer, pop_drained{cut});
    for (auto& s : services_)
      for (auto& t : s.tunnels)
        send_exit(t.tunnel, caf::exit_reason::user_shutdown);
    for (auto& c : client_tunnels_)
      send_exit(c, caf::exit_reason::user_shutdown);
    quit();
  }

  // Actors hold each other's handles (owner <-> tunnel <-> session); a dead
  // actor lets go of them so that no cycle outlives it.
  void on_exit() override {
    p_ = {};
    drain_watch_ = nullptr;
    client_tunnels_.clear();
    client_of_.clear();
    client_key_.clear();
    client_cert_.clear();
    services_.clear();
  }

  pop_params p_;
  /// Public listens in flight: tag -> service name.
  std::unordered_map<uint64_t, std::string> listen_tags_;
  uint64_t last_listen_tag_ = 0;
  bool ready_sent_ = false;
  /// Client tunnels: principal and service, to recheck on reload.
  std::map<caf::actor_addr, std::pair<std::string, std::string>> client_of_;
  /// Services drtp_pop_tunnels_up has shown (bounded by the registry's
  /// label-set cap): a removed one is set to 0, not left at its last value.
  std::set<std::string> gauged_services_;
  std::map<caf::actor_addr, std::string> client_key_;
  std::map<caf::actor_addr, std::string> client_cert_; // by certificate: it

  std::string who_;
  std::shared_ptr<const auth_db> auth_;
  std::vector<caf::actor> client_tunnels_;
  size_t listeners_wanted_ = 1; // the tunnel listener, then public ports
  net::listener_id tunnel_listener_ = 0;
  std::vector<service_state> services_;
  std::unordered_map<net::listener_id, size_t> by_listener_;
  size_t listening_ = 0;
  phase phase_ = phase::serving;
  /// Tunnels that have not reported up: in admission_'s table, or evicted
  /// from it and about to go.
  std::set<caf::actor_addr> handshaking_;
  admission admission_;
  open_limiter by_source_;    // public visitors per source address
  open_limiter by_service_;   // public visitors per service
  open_limiter by_principal_; // patch-panel streams per principal
  uint64_t refused_visitors_ = 0;
  uint64_t refused_streams_ = 0;
  uint64_t refused_gateway_ = 0;
  std::vector<net::cidr_set> cidrs_; // each service's allow_cidr, as p_.services
  /// Open public visitors: conn -> {service, source}, for end_open_sessions.
  /// Bounded by visitors_per_service_max per service; an entry goes with
  /// the visitor's stream slot.
  std::unordered_map<net::conn_id, std::pair<std::string, std::string>> visitors_;
  /// A client tunnel's source address (its link's peer).
  std::map<caf::actor_addr, std::string> client_source_;
  pop_ready ready_;
  caf::actor drain_watch_; // asked before a drain closes the listeners
  bool closed_for_drain_ = false;
};

} // namespace

caf::actor spawn_pop_server(caf::actor_system& sys, pop_params p) {
  return sys.spawn<pop_server_actor>(std::move(p));
}

} // namespace drtp
