#include "actors/agent.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "actors/messages.hpp"
#include "actors/metrics_endpoint.hpp"
#include "actors/rsession.hpp"
#include "actors/agent_tunnel.hpp"
#include "caf/all.hpp"
#include "net/seam/assert.hpp"
#include "net/wire/control.hpp"

namespace drtp {

namespace {

using time_point = caf::actor_clock::time_point;

class agent_actor final : public caf::event_based_actor {
public:
  agent_actor(caf::actor_config& cfg, agent_params p)
    : caf::event_based_actor(cfg), p_(std::move(p)) {
    DRTP_ASSERT(!p_.pops.empty(), "an agent has at least one POP to dial");
    if (p_.pops.size() > agent_pops_max)
      p_.pops.resize(agent_pops_max);
    wanted_ = std::clamp<uint32_t>(p_.tunnels_target, 1, tunnels_target_max);
    for (auto& ep : p_.pops)
      pops_.push_back(make_state(ep));
    retarget();
  }

  const char* name() const override {
    return "drtp.agent";
  }

  caf::behavior make_behavior() override {
    who_ = "agent#" + std::to_string(id());
    set_down_handler([this](caf::down_msg& dm) {
      if (auto i = find(dm.source); i != npos) {
        on_tunnel_gone(i);
      } else if (auto j = session_ids_.find(dm.source); j != session_ids_.end()) {
        sessions_.erase(j->second);
        session_ids_.erase(j);
      }
    });
    if (p_.client)
      send(p_.e.io, net::listen_req{1, p_.listen_host, p_.listen_port, false});
    rebalance();
    return {
      // -- drtp connect: the local listener -------------------------------------
      [this](const net::listening& ev) {
        notify(agent_event::listening,
               "listening on " + p_.listen_host + ":" + std::to_string(ev.port)
                 + " for service '" + p_.service + "'");
      },
      [this](const net::listen_failed& ev) { stop_for_good(ev.what); },
      [this](const net::accepted& ev) { on_local_conn(ev); },
      [this](best_tunnel_atom) { return tunnels_by_rtt(); },
      [this](const tunnel_rtt& ev) {
        if (auto i = find(current_sender()); i != npos) {
          pops_[i].rtt_us = ev.rtt_us;
          pops_[i].rtt_seen_us = ev.rtt_us;
          p_.e.stats->histogram(net::metric::tunnel_rtt_seconds, {p_.service, pops_[i].ep.name})
            .observe_us(ev.rtt_us);
          p_.e.sessions->observe_rtt(pops_[i].ep.name, ev.rtt_us, p_.e.clock->unix_ms(clock()));
        }
      },
      [this](path_info_atom, const caf::actor_addr& tunnel) {
        auto i = find(tunnel);
        return i == npos ? std::string{} : pops_[i].ep.name;
      },
      // -- the control plane's follower ----------------------------------------
      [this](agent_set_pops& ev) { on_set_pops(std::move(ev.pops)); },
      [this](agent_set_identity& ev) { on_set_identity(ev); },
      [this](agent_tunnels_atom) { return tunnels_info(); },
      // -- the metrics endpoint (actors/metrics_endpoint) --------------------------
      [this](health_atom) { return health(); },
      [this](sessions_atom) { return sessions_json(); },
      // -- drtp serve: resumable sessions by id ---------------------------------
      [this](register_session& ev) { on_register_session(ev); },
      [this](lookup_atom, const std::string& id) {
        auto i = sessions_.find(id);
        return i == sessions_.end() ? caf::actor{} : i->second;
      },
      // -- the tunnels ----------------------------------------------------------
      [this](tunnel_up& ev) { on_tunnel_up(ev); },
      [this](tunnel_rejected& ev) { on_tunnel_rejected(ev); },
      [this](tunnel_failed& ev) {
        if (auto i = find(current_sender()); i != npos)
          pops_[i].last_error = ev.what;
      },
      [this](tunnel_draining& ev) { on_tunnel_draining(ev); },
      [this](reconnect_atom) {
        timer_pending_ = false;
        rebalance();
      },
    };
  }

private:
  /// A fatal error (a rejected secret, no local listener): tell, stop
  /// every tunnel, quit.
  void stop_for_good(const std::string& what) {
    DRTP_ASSERT(run_ == run_state::running, "an agent stops for good once");
    run_ = run_state::stopped;
    notify(agent_event::fatal, what);
    stop_all();
  }

  /// A reject is final for this POP when only its operator can change the
  /// answer (its config); a timeout, a drain or a protocol error is worth a
  /// retry like any failure.
  static bool definitive(uint16_t code) {
    using net::reject_code;
    switch (static_cast<reject_code>(code)) {
      case reject_code::handshake_timeout:
      case reject_code::draining:
      case reject_code::protocol_error: return false;
      default: return true;
    }
  }

  /// What a reject is about: "rejected service 'S'" or, for drtp connect,
  /// "refused principal 'P' for service 'S'".
  std::string rejected_what() const {
    return p_.client ? "refused principal '" + p_.agent_id + "' for service '"
                         + p_.service + "'"
                     : "rejected service '" + p_.service + "'";
  }

  /// The tunnel quits right after; on_tunnel_gone decides what it means.
  void on_tunnel_rejected(const tunnel_rejected& ev) {
    auto i = find(current_sender());
    if (i == npos)
      return;
    auto& ps = pops_[i];
    auto what = "POP " + ps.ep.name + " " + rejected_what() + ": " + ev.message;
    if (ev.code == static_cast<uint16_t>(net::reject_code::bad_certificate)
        && ps.by_cert && !p_.signing_key.empty() && !ps.secret_only) {
      // A POP that does not (yet) know the control plane's CA, or a static
      // POP with the service's verifier: the secret still logs in there,
      // until the next identity.
      ps.secret_only = true;
      ps.last_error = what + "; dialing it by the secret";
      return;
    }
    if (definitive(ev.code))
      ps.reject = ev.message.empty() ? std::string("rejected") : ev.message;
    else
      ps.last_error = what;
  }

  /// A renewed certificate: the next dials present it. POPs set aside for
  /// a reject are dialed again (the old certificate may be why).
  void on_set_identity(const agent_set_identity& ev) {
    if (ev.cert_pem.empty() || ev.key_pem.empty())
      return;
    p_.client_cert_pem = ev.cert_pem;
    p_.client_key_pem = ev.key_pem;
    if (!ev.seed.empty())
      for (auto& ps : pops_)
        if (ps.tunnel)
          send(ps.tunnel, tunnel_renew{ev.cert_pem, ev.seed});
    auto now = p_.e.clock->now(clock());
    for (auto& ps : pops_) {
      ps.secret_only = false;
      if (ps.rejected && !ps.retired) {
        ps.rejected = false;
        ps.not_before = now;
      }
    }
    trace("client certificate renewed: open tunnels announce it, new ones present it");
    rebalance();
  }

  /// A definitive reject: set this POP aside, keep every other tunnel, and
  /// stop only when every POP's latest answer is such a reject.
  void on_pop_rejected(size_t i, time_point now) {
    auto& ps = pops_[i];
    ps.rejected = true;
    ps.not_before = now + std::chrono::milliseconds(p_.reject_set_aside_ms);
    auto all = std::all_of(pops_.begin(), pops_.end(),
                           [](const pop_state& x) { return x.rejected || x.retired; });
    if (all && p_.stop_when_every_pop_rejects) {
      std::string why;
      auto listed = listed_count();
      for (auto& x : pops_)
        if (!x.retired)
          why += (why.empty() ? "" : ", ") + x.last_reject
                 + (listed > 1 ? " (POP " + x.ep.name + ")" : "");
      stop_for_good((listed > 1 ? "every POP " : "POP " + ps.ep.name + " ")
                    + rejected_what() + ": " + why);
      return;
    }
    notify(agent_event::retrying,
           "POP " + ps.ep.name + " " + rejected_what() + ": " + ps.last_reject
             + "; set aside, the other POPs carry on; "
             + std::to_string(count(pop_state::up)) + " of "
             + std::to_string(target_) + " up; retrying it in "
             + std::to_string(p_.reject_set_aside_ms) + " ms");
    rebalance();
  }

  /// drtp connect: each local connection is a resumable session.
  void on_local_conn(const net::accepted& ev) {
    rsession_params rp;
    rp.e = p_.e;
    rp.client_end = true;
    rp.session_id = p_.e.rng->bytes(net::session_id_bytes);
    rp.principal = p_.agent_id;
    rp.local_conn = ev.id;
    rp.controller = this;
    rp.service = p_.service;
    rp.resume_timeout_ms = p_.resume_timeout_ms;
    spawn_rsession(system(), std::move(rp));
  }

  /// Up tunnels, lowest RTT first: the session tries them in order.
  std::vector<caf::actor> tunnels_by_rtt() const {
    std::vector<std::pair<uint32_t, caf::actor>> up;
    for (auto& ps : pops_)
      if (ps.phase == pop_state::up && ps.tunnel)
        up.emplace_back(ps.rtt_us, ps.tunnel);
    std::stable_sort(up.begin(), up.end(),
                     [](auto& a, auto& b) { return a.first < b.first; });
    std::vector<caf::actor> out;
    for (auto& u : up)
      out.push_back(u.second);
    return out;
  }

  void on_register_session(register_session& ev) {
    if (sessions_.size() >= sessions_max_ || sessions_.count(ev.id)) {
      send_exit(ev.session, caf::exit_reason::user_shutdown);
      return;
    }
    session_ids_[ev.session.address()] = ev.id;
    sessions_[ev.id] = ev.session;
    DRTP_ASSERT(session_ids_.size() == sessions_.size(),
                "every resumable session is known by its id and by its address");
    monitor(ev.session);
  }

  void on_tunnel_up(const tunnel_up& ev) {
    auto i = find(ev.tunnel.address());
    if (i == npos)
      return;
    auto& ps = pops_[i];
    if (ps.retired)
      return; // aborted when its POP left the list; its exit follows
    DRTP_ASSERT(ps.phase == pop_state::connecting, "a tunnel reports up once, while connecting");
    ps.phase = pop_state::up;
    ps.up_since = p_.e.clock->now(clock());
    ps.last_error.clear();
    ps.rejected = false;
    notify(agent_event::up,
           "tunnel up to POP " + ps.ep.name + region_of(ps) + " for service '"
             + p_.service + "'; " + std::to_string(count(pop_state::up))
             + " of " + std::to_string(target_) + " up");
    rebalance();
  }

  void on_tunnel_draining(const tunnel_draining& ev) {
    auto i = find(current_sender());
    if (i == npos)
      return;
    if (pops_[i].phase == pop_state::draining) {
      pops_[i].retiring = false; // the POP drains too: it stays draining if listed again
      return;
    }
    DRTP_ASSERT(pops_[i].phase == pop_state::up, "only an up tunnel hears goaway");
    pops_[i].phase = pop_state::draining;
    trace("POP " + pops_[i].ep.name + " is draining (" + ev.why
          + "); opening a replacement");
    rebalance();
  }

  struct pop_state;

  static pop_state make_state(const pop_endpoint& ep) {
    pop_state ps;
    ps.ep = ep;
    if (ps.ep.name.empty())
      ps.ep.name = ep.host + ":" + std::to_string(ep.port);
    return ps;
  }

  size_t listed_count() const {
    return static_cast<size_t>(std::count_if(
      pops_.begin(), pops_.end(), [](const pop_state& ps) { return !ps.retired; }));
  }

  /// K as asked, clamped to the POPs listed now (at least one is).
  void retarget() {
    auto listed = listed_count();
    DRTP_ASSERT(listed >= 1, "an agent lists at least one POP");
    target_ = std::min<uint32_t>(wanted_, static_cast<uint32_t>(listed));
    DRTP_ASSERT(target_ >= 1 && target_ <= tunnels_target_max,
                "an agent holds 1 to tunnels_target_max tunnels");
  }

  /// The follower's new list. A POP that stays (same name, host and port)
  /// keeps its state and tunnel; a POP that left is retired: a connecting
  /// tunnel to it is aborted, an up one is kept like a draining one until
  /// K listed tunnels are up (rebalance lets it go then).
  void on_set_pops(std::vector<pop_endpoint> list) {
    if (run_ == run_state::stopped)
      return;
    if (list.empty()) {
      trace("ignored an empty POP list: keeping the " + std::to_string(listed_count())
            + " POPs known");
      return;
    }
    if (list.size() > agent_pops_max)
      list.resize(agent_pops_max);
    std::vector<pop_state> next;
    std::vector<bool> taken(pops_.size(), false);
    std::string added;
    for (auto& raw : list) {
      auto fresh = make_state(raw);
      auto same = [&](const pop_state& ps) {
        return ps.ep.name == fresh.ep.name && ps.ep.host == fresh.ep.host
               && ps.ep.port == fresh.ep.port;
      };
      if (std::any_of(next.begin(), next.end(), same))
        continue; // listed twice
      size_t j = 0;
      while (j < pops_.size() && (taken[j] || !same(pops_[j])))
        ++j;
      if (j < pops_.size()) {
        taken[j] = true;
        auto ps = std::move(pops_[j]);
        ps.ep.region = fresh.ep.region;
        ps.ep.tls = fresh.ep.tls; // for the next dial
        ps.retired = false; // if retiring, rebalance may take its tunnel back
        next.push_back(std::move(ps));
      } else {
        added += (added.empty() ? "" : ", ") + fresh.ep.name;
        next.push_back(std::move(fresh));
      }
    }
    std::string removed;
    for (size_t j = 0; j < pops_.size(); ++j) {
      if (taken[j])
        continue;
      auto& ps = pops_[j];
      if (!ps.tunnel)
        continue; // idle: forgotten now
      if (!ps.retired)
        removed += (removed.empty() ? "" : ", ") + ps.ep.name;
      ps.retired = true;
      if (ps.phase == pop_state::connecting) {
        // Not up yet: nothing to keep; its exit comes to on_tunnel_gone.
        ps.phase = pop_state::draining;
        let_go_.insert(ps.tunnel.address());
        send_exit(ps.tunnel, caf::exit_reason::user_shutdown);
      } else if (ps.phase == pop_state::up) {
        ps.phase = pop_state::draining;
        ps.retiring = true;
      }
      next.push_back(std::move(ps));
    }
    pops_ = std::move(next);
    DRTP_ASSERT(pops_.size() <= 2 * agent_pops_max, "an agent knows a bounded number of POPs");
    retarget();
    trace("POP list now " + std::to_string(listed_count()) + " POPs"
          + (added.empty() ? "" : "; new: " + added)
          + (removed.empty() ? "" : "; leaving: " + removed) + "; K = "
          + std::to_string(target_));
    rebalance();
  }

  /// Ready: K tunnels up, or at least ready_tunnels_min if that is set lower.
  health_report health() const {
    auto up = count(pop_state::up);
    auto need = p_.ready_tunnels_min == 0 ? target_ : std::min(p_.ready_tunnels_min, target_);
    health_report h;
    h.ready = run_ == run_state::running && up >= need;
    h.detail = std::to_string(up) + " of " + std::to_string(target_) + " tunnel(s) up for service '"
               + p_.service + "'" + (run_ == run_state::running ? "" : "; stopped");
    return h;
  }

  std::string sessions_json() const {
    static const char* phases[] = {"idle", "connecting", "up", "draining"};
    std::string out = std::string("{\"role\":\"") + (p_.client ? "client" : "agent")
                      + "\",\"service\":" + json_quote(p_.service)
                      + ",\"tunnels_wanted\":" + std::to_string(target_) + ",\"tunnels\":[";
    bool first = true;
    for (auto& ps : pops_) {
      if (!first)
        out += ',';
      first = false;
      out += "{\"pop\":" + json_quote(ps.ep.name) + ",\"region\":" + json_quote(ps.ep.region)
             + ",\"state\":\"" + phases[ps.phase] + "\",\"rtt_us\":"
             + (ps.rtt_seen_us == UINT32_MAX ? std::string("null") : std::to_string(ps.rtt_seen_us))
             + ",\"failures\":" + std::to_string(ps.failures) + "}";
    }
    out += "],\"resumable_sessions\":" + std::to_string(sessions_.size()) + ",\"sessions\":"
           + p_.e.sessions->json(p_.e.clock->unix_ms(clock()), net::debug_sessions_listed_max) + "}";
    return out;
  }

  agent_tunnels tunnels_info() const {
    agent_tunnels out;
    out.target = target_;
    for (auto& ps : pops_) {
      if (ps.tunnel)
        out.tunnels.push_back(
          agent_tunnel_info{ps.ep.name, ps.ep.region, ps.phase == pop_state::up, ps.rtt_us});
      if (ps.rtt_seen_us != UINT32_MAX)
        out.rtt_us.emplace_back(ps.ep.name, ps.rtt_seen_us);
    }
    return out;
  }

  struct pop_state {
    pop_endpoint ep;
    enum phase_t { idle, connecting, up, draining } phase = idle;
    caf::actor tunnel;
    uint32_t failures = 0; // in a row
    time_point not_before{};
    time_point up_since{};
    std::string last_error;
    /// Set by a definitive reject until the tunnel is gone ...
    std::string reject;
    /// ... then this POP's latest answer was that reject, until a tunnel
    /// to it comes up or fails otherwise.
    bool rejected = false;
    std::string last_reject;
    uint32_t rtt_us = UINT32_MAX; // unknown until the first pong
    /// The latest round trip ever measured to this POP (kept after its
    /// tunnel is gone): how a follower orders POPs by distance.
    uint32_t rtt_seen_us = UINT32_MAX;
    /// No longer in the POP list: never dialed again; its tunnel is let go
    /// once K tunnels to listed POPs are up, then the entry is forgotten.
    bool retired = false;
    /// Draining only because its POP left the list (the POP did not say
    /// goaway): up again if the POP is listed again before it is let go.
    bool retiring = false;
    /// Its latest dial presented the certificate.
    bool by_cert = false;
    /// It refused our certificate while we hold a secret: dialed by the
    /// secret until the next identity (agent_set_identity).
    bool secret_only = false;
  };

  static constexpr size_t npos = static_cast<size_t>(-1);

  static std::string region_of(const pop_state& ps) {
    return ps.ep.region.empty() ? "" : " (" + ps.ep.region + ")";
  }

  void stop_all() {
    for (auto& ps : pops_)
      if (ps.tunnel)
        send_exit(ps.tunnel, caf::exit_reason::user_shutdown);
    quit();
  }

  void trace(const std::string& what) {
    p_.e.trace->emit(p_.e.host, who_, what);
  }

  void notify(agent_event::kind_t kind, const std::string& what) {
    DRTP_ASSERT(count(pop_state::up) <= tunnels(), "tunnels_up <= tunnels");
    trace(what);
    if (p_.observer)
      send(p_.observer, agent_event{kind, what, count(pop_state::up)});
  }

  size_t find(const caf::actor_addr& a) const {
    for (size_t i = 0; i < pops_.size(); ++i)
      if (pops_[i].tunnel && pops_[i].tunnel.address() == a)
        return i;
    return npos;
  }

  size_t find(const caf::strong_actor_ptr& a) const {
    return find(caf::actor_cast<caf::actor_addr>(a));
  }

  /// Tunnels alive now, in any phase.
  uint32_t tunnels() const {
    return static_cast<uint32_t>(std::count_if(
      pops_.begin(), pops_.end(), [](const pop_state& ps) { return bool(ps.tunnel); }));
  }

  uint32_t count(pop_state::phase_t ph) const {
    return static_cast<uint32_t>(std::count_if(
      pops_.begin(), pops_.end(), [&](const pop_state& ps) { return ps.phase == ph; }));
  }

  /// Opens tunnels until K are up or connecting (never more than K+1 in
  /// all), lets draining tunnels go once K others are up, and arms a timer
  /// for the next POP that leaves its backoff.
  /// The tunnel gauges and the restore timer, after every change: a
  /// restore runs from the moment fewer than K are up (after K were up
  /// once: the start is not a restore) to K up again.
  void publish_tunnel_metrics() {
    auto& m = *p_.e.stats;
    for (auto& ps : pops_)
      m.gauge(net::metric::tunnels_up, {p_.service, ps.ep.name})
        .set(ps.phase == pop_state::up ? 1 : 0);
    m.gauge(net::metric::tunnels_wanted, {p_.service}).set(target_);
    auto up = count(pop_state::up);
    auto now = p_.e.clock->now(clock());
    if (up >= target_) {
      if (below_k_since_)
        m.histogram(net::metric::tunnel_restore_seconds, {p_.service})
          .observe_us(static_cast<uint64_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(now - *below_k_since_)
              .count()));
      below_k_since_.reset();
      reached_k_ = true;
    } else if (reached_k_ && !below_k_since_) {
      below_k_since_ = now;
    }
  }

  void rebalance() {
    publish_tunnel_metrics();
    if (run_ == run_state::stopped)
      return;
    auto now = p_.e.clock->now(clock());
    auto active = count(pop_state::connecting) + count(pop_state::up);
    // A POP listed again before its tunnel was let go: that tunnel is up
    // again, if fewer than K are up or connecting (else it goes as planned).
    for (auto& ps : pops_)
      if (ps.retiring && !ps.retired && ps.phase == pop_state::draining && ps.tunnel
          && !let_go_.count(ps.tunnel.address()) && active < target_) {
        ps.phase = pop_state::up;
        ps.retiring = false;
        ++active;
      }
    auto total = active + count(pop_state::draining);
    while (active < target_ && total < target_ + 1) {
      auto i = pick(now);
      if (i == npos)
        break;
      dial(i);
      ++active;
      ++total;
    }
    if (count(pop_state::up) >= target_)
      for (auto& ps : pops_)
        if (ps.phase == pop_state::draining && ps.tunnel
            && !let_go_.count(ps.tunnel.address())) {
          send(ps.tunnel, drain_atom::value);
          let_go_.insert(ps.tunnel.address());
        }
    shed_draining(active, total);
    DRTP_ASSERT(let_go_.size() <= count(pop_state::draining),
                "only draining tunnels are let go");
    if (active < target_)
      arm_timer(now);
  }

  /// Several draining tunnels (POPs that left the list at once) can fill
  /// the K+1 allowed while fewer than K are up or connecting: none could
  /// be dialed and none let go, for good. Let go of just enough of them,
  /// retired POPs' first, that a replacement can be dialed once they end.
  void shed_draining(uint32_t active, uint32_t total) {
    if (active >= target_ || total < target_ + 1)
      return;
    auto leaving = static_cast<uint32_t>(let_go_.size());
    auto excess = total - target_;
    for (int pass = 0; pass < 2 && leaving < excess; ++pass)
      for (auto& ps : pops_)
        if (leaving < excess && ps.phase == pop_state::draining && ps.tunnel
            && ps.retired == (pass == 0) && !let_go_.count(ps.tunnel.address())) {
          send(ps.tunnel, drain_atom::value);
          let_go_.insert(ps.tunnel.address());
          ++leaving;
        }
  }

  /// The best POP to dial now: idle and out of backoff, in a region we do
  /// not hold yet if possible, then fewest recent failures, then list order.
  size_t pick(time_point now) const {
    std::set<std::string> held;
    for (auto& ps : pops_)
      if (ps.phase == pop_state::connecting || ps.phase == pop_state::up)
        held.insert(ps.ep.region);
    size_t best = npos;
    auto better = [&](size_t a, size_t b) {
      bool a_new = !held.count(pops_[a].ep.region);
      bool b_new = !held.count(pops_[b].ep.region);
      if (a_new != b_new)
        return a_new;
      return pops_[a].failures < pops_[b].failures;
    };
    for (size_t i = 0; i < pops_.size(); ++i) {
      auto& ps = pops_[i];
      if (ps.phase != pop_state::idle || ps.retired || ps.not_before > now)
        continue;
      if (best == npos || better(i, best))
        best = i;
    }
    return best;
  }

  void arm_timer(time_point now) {
    time_point next = time_point::max();
    for (auto& ps : pops_)
      if (ps.phase == pop_state::idle && !ps.retired)
        next = std::min(next, std::max(ps.not_before, now));
    if (next == time_point::max())
      return;
    if (timer_pending_ && timer_at_ <= next)
      return;
    timer_pending_ = true;
    timer_at_ = next;
    auto delay = std::chrono::duration_cast<std::chrono::milliseconds>(next - now);
    delayed_send(this, p_.e.clock->real_delay(std::max(delay, std::chrono::milliseconds(1))),
                 reconnect_atom::value);
  }

  void dial(size_t i) {
    auto& ps = pops_[i];
    DRTP_ASSERT(ps.phase == pop_state::idle && !ps.tunnel, "only an idle POP is dialed");
    agent_tunnel_params tp;
    tp.e = p_.e;
    tp.parent = this;
    tp.pop_name = ps.ep.name;
    tp.pop_host = ps.ep.host;
    tp.pop_port = ps.ep.port;
    tp.tls = ps.ep.tls ? ps.ep.tls : p_.tls;
    DRTP_ASSERT(tp.tls != nullptr, "every POP's certificate is checked somehow");
    if (tp.tls && !tp.tls->ca_file.empty() && tp.tls->server_name.empty()) {
      // Verified against a CA: each POP must present its own name.
      auto per_pop = std::make_shared<net::tls_client_config>(*tp.tls);
      per_pop->server_name = ps.ep.host;
      tp.tls = std::move(per_pop);
    }
    tp.service = p_.service;
    tp.agent_id = p_.agent_id;
    tp.signing_key = p_.signing_key;
    ps.by_cert = !p_.client_cert_pem.empty() && !ps.secret_only;
    if (ps.by_cert) {
      // Enrolled: this dial presents the certificate of now (a renewal
      // reaches this tunnel in band, tunnel_renew).
      auto with_cert = std::make_shared<net::tls_client_config>(*tp.tls);
      with_cert->cert_pem = p_.client_cert_pem;
      with_cert->key_pem = p_.client_key_pem;
      tp.tls = std::move(with_cert);
      tp.certificate = true;
    }
    tp.client = p_.client;
    tp.resume_timeout_ms = p_.resume_timeout_ms;
    tp.local_host = p_.local_host;
    tp.local_port = p_.local_port;
    ps.tunnel = spawn_agent_tunnel(system(), std::move(tp));
    ps.phase = pop_state::connecting;
    ps.rtt_us = UINT32_MAX;
    DRTP_ASSERT(tunnels() <= target_ + 1, "an agent never holds more than K+1 tunnels");
    monitor(ps.tunnel);
  }

  void on_tunnel_gone(size_t i) {
    auto& ps = pops_[i];
    let_go_.erase(ps.tunnel.address());
    ps.tunnel = nullptr;
    ps.retiring = false;
    auto phase = ps.phase;
    DRTP_ASSERT(phase != pop_state::idle, "a POP with a tunnel is connecting, up or draining");
    ps.phase = pop_state::idle;
    p_.e.stats->gauge(net::metric::tunnels_up, {p_.service, ps.ep.name}).set(0);
    if (run_ == run_state::stopped)
      return;
    if (phase == pop_state::up || phase == pop_state::draining)
      p_.e.stats->counter(net::metric::tunnel_failovers_total, {p_.service}).add();
    if (ps.retired) {
      trace("let go of POP " + ps.ep.name + " (no longer listed); "
            + std::to_string(count(pop_state::up)) + " of " + std::to_string(target_) + " up");
      pops_.erase(pops_.begin() + static_cast<std::ptrdiff_t>(i));
      rebalance();
      return;
    }
    auto now = p_.e.clock->now(clock());
    if (!ps.reject.empty()) {
      ps.last_reject = std::move(ps.reject);
      ps.reject.clear();
      ps.last_error.clear();
      on_pop_rejected(i, now);
      return;
    }
    ps.rejected = false;
    uint64_t delay_ms = 0;
    if (phase == pop_state::draining) {
      // Not a failure: the POP asked us to go. Give it time to restart.
      delay_ms = p_.drain_retry_ms;
    } else {
      if (phase == pop_state::up
          && now - ps.up_since >= std::chrono::milliseconds(p_.stable_ms))
        ps.failures = 0;
      ++ps.failures;
      // Full jitter: a POP that comes back does not see all agents at once.
      uint64_t cap = std::min<uint64_t>(
        p_.backoff_max_ms,
        uint64_t{p_.backoff_initial_ms} << std::min<uint32_t>(ps.failures - 1, 16));
      delay_ms = p_.e.rng->uniform(cap + 1);
      // Set a failing POP aside only while enough others are not failing:
      // when every POP fails (a region-wide outage), backoff alone decides.
      size_t healthy_others = 0;
      for (auto& other : pops_)
        if (&other != &ps && other.failures < p_.failures_before_set_aside)
          ++healthy_others;
      if (ps.failures >= p_.failures_before_set_aside && healthy_others >= target_)
        delay_ms = std::max<uint64_t>(delay_ms, p_.set_aside_ms);
    }
    ps.not_before = now + std::chrono::milliseconds(delay_ms);
    auto what = ps.last_error.empty() ? "tunnel to POP " + ps.ep.name + " closed"
                                      : ps.last_error;
    ps.last_error.clear();
    notify(phase == pop_state::up ? agent_event::down : agent_event::retrying,
           what + "; " + std::to_string(count(pop_state::up)) + " of "
             + std::to_string(target_) + " up; retrying it in "
             + std::to_string(delay_ms) + " ms"
             + (delay_ms >= p_.set_aside_ms && phase != pop_state::draining
                  ? " (set aside after " + std::to_string(ps.failures) + " failures)"
                  : ""));
    rebalance();
  }

  // Actors hold each other's handles (owner <-> tunnel <-> session); a dead
  // actor lets go of them so that no cycle outlives it.
  void on_exit() override {
    p_ = {};
    pops_.clear();
    sessions_.clear();
  }

  agent_params p_;
  uint32_t wanted_ = 2; // K as asked
  uint32_t target_ = 2; // K as applied: wanted_ clamped to the listed POPs
  /// The restore timer (publish_tunnel_metrics).
  bool reached_k_ = false;
  std::optional<caf::actor_clock::time_point> below_k_since_;
  std::string who_;
  std::vector<pop_state> pops_;
  std::set<caf::actor_addr> let_go_;
  /// Serve end of the patch panel: sessions that may be resumed, by id.
  std::map<std::string, caf::actor> sessions_;
  std::map<caf::actor_addr, std::string> session_ids_;
  static constexpr size_t sessions_max_ = 100000;
  bool timer_pending_ = false;
  time_point timer_at_{};
  /// Stopped after a fatal error: no more dialing.
  enum class run_state : uint8_t { running, stopped } run_ = run_state::running;
};

} // namespace

caf::actor spawn_agent(caf::actor_system& sys, agent_params p) {
  return sys.spawn<agent_actor>(std::move(p));
}

} // namespace drtp
