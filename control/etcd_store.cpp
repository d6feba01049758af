#include "control/etcd_store.hpp"

// What this store enforces of store_limits, and how:
// - key_bytes_max, value_bytes_max, keys with NUL: checked here, exactly.
// - keys_max: a count of the keys under key_prefix (a count_only range),
//   kept as an estimate updated by this store's own creates and deletes and
//   read again when older than 1 s or within 1/16 of the cap; near the cap
//   a put first asks whether its key exists. Two replicas racing at the cap
//   may each add a key past it: etcd has no bound a transaction can check.
// - total_bytes_max, history_bytes_max: not counted (that would read every
//   value); etcd's own --quota-backend-bytes bounds its database, and its
//   "database space exceeded" answers `full`.
// - history_max: the store compacts etcd to its last history_max revisions
//   (every history_max/8 writes), so etcd's history stays bounded too
//   (etcd 3.4 does not compact by itself unless told to).
// - watches_max, event_changes_max, progress_interval_ms: here, exactly.

#include <chrono>
#include <map>
#include <memory>

#include <nlohmann/json.hpp>

#include "actors/http_client.hpp"
#include "caf/all.hpp"
#include "net/seam/assert.hpp"

namespace drtp::control {

namespace {

using json = nlohmann::json;
using retry_atom = caf::atom_constant<caf::atom("eretry")>;
using wretry_atom = caf::atom_constant<caf::atom("ewretry")>;
using eprogress_atom = caf::atom_constant<caf::atom("eprogress")>;

constexpr size_t members_max = 16;
/// etcd 3.4 sends a catching-up watcher at most this many revisions per
/// response, with the current revision in its header even when more follow
/// (mvcc watchBatchMaxRevs): such a header is not a progress mark.
constexpr size_t etcd_watch_batch_revs = 1000;

const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string b64(const std::string& in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += b64_chars[v >> 18];
    out += b64_chars[(v >> 12) & 63];
    out += b64_chars[(v >> 6) & 63];
    out += b64_chars[v & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    out += b64_chars[v >> 18];
    out += b64_chars[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += b64_chars[v >> 18];
    out += b64_chars[(v >> 12) & 63];
    out += b64_chars[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string unb64(const std::string& in) {
  std::string out;
  out.reserve(in.size() / 4 * 3);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '+')
      v = 62;
    else if (c == '/')
      v = 63;
    else
      continue; // '=' and anything else
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

/// etcd's int64s come as JSON strings; absent means 0.
uint64_t u64(const json& j, const char* name) {
  auto i = j.find(name);
  if (i == j.end())
    return 0;
  if (i->is_string()) {
    try {
      return std::stoull(i->get<std::string>());
    } catch (...) {
      return 0;
    }
  }
  if (i->is_number_unsigned() || i->is_number_integer())
    return i->get<uint64_t>();
  return 0;
}

std::string str(const json& j, const char* name) {
  auto i = j.find(name);
  return i != j.end() && i->is_string() ? i->get<std::string>() : std::string();
}

bool flag(const json& j, const char* name) {
  auto i = j.find(name);
  return i != j.end() && i->is_boolean() && i->get<bool>();
}

const json& member(const json& j, const char* name) {
  static const json empty = json::object();
  auto i = j.find(name);
  return i != j.end() && i->is_object() ? *i : empty;
}

const json& array(const json& j, const char* name) {
  static const json empty = json::array();
  auto i = j.find(name);
  return i != j.end() && i->is_array() ? *i : empty;
}

/// The end of the range of every key starting with `prefix` (etcd's
/// range_end): the prefix with its last byte below 0xff incremented.
std::string prefix_end(std::string prefix) {
  while (!prefix.empty()) {
    auto& c = prefix.back();
    if (static_cast<uint8_t>(c) < 0xff) {
      c = static_cast<char>(static_cast<uint8_t>(c) + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return std::string(1, '\0'); // every key
}

using call_done = std::function<void(caf::expected<json>)>;

struct call_state {
  std::string path;
  std::string body;
  caf::actor_clock::time_point deadline;
  size_t member = 0;
  size_t tries = 0;
  std::string last_error;
  call_done done;
};

struct watch_state {
  store_watch w;
  uint64_t http_tag = 0;
  size_t member = 0;
  caf::response_promise rp;
  bool answered = false;   // store_watch_started sent
  uint64_t delivered = 0;  // every change up to it was sent
  caf::actor_clock::time_point resume_deadline;
  size_t tries = 0;
  std::string last_error;
};

class etcd_store final : public caf::event_based_actor {
public:
  etcd_store(caf::actor_config& cfg, etcd_store_params p)
    : caf::event_based_actor(cfg), p_(std::move(p)) {
    DRTP_ASSERT(!p_.members.empty(), "an etcd store has members");
    DRTP_ASSERT(p_.limits.progress_interval_ms > 0 && p_.limits.progress_interval_ms <= 5000,
                "the store protocol promises progress at least every 5 s");
    DRTP_ASSERT(p_.limits.event_changes_max > 0, "a batch holds a change");
    DRTP_ASSERT(p_.limits.history_max > 0, "the history holds a change");
  }

  const char* name() const override {
    return "drtp.etcd_store";
  }

  caf::behavior make_behavior() override {
    const auto& lim = p_.limits;
    for (auto& m : p_.members) {
      http_client_params hp;
      hp.e = p_.e;
      hp.host = m.host;
      hp.port = m.port;
      hp.connect_timeout_ms = p_.member_timeout_ms;
      hp.request_timeout_ms = p_.member_timeout_ms;
      // A list of every key at its largest, base64 (4/3) and JSON around it.
      hp.limits.body_bytes_max = std::min<uint64_t>(
        (uint64_t{lim.key_bytes_max} + lim.value_bytes_max) * 2 + 64 * 1024,
        uint64_t{512} * 1024 * 1024);
      hp.limits.body_bytes_max = std::max<uint64_t>(
        hp.limits.body_bytes_max, std::min<uint64_t>(lim.total_bytes_max * 3 / 2
                                                       + uint64_t{lim.keys_max} * 2 * 1024,
                                                     uint64_t{512} * 1024 * 1024));
      hp.name = "etcd-" + m.host + ":" + std::to_string(m.port);
      clients_.push_back(spawn_http_client(system(), std::move(hp)));
    }
    set_down_handler([this](caf::down_msg& m) { drop(m.source); });
    return {
      [this](const store_get& q) { on_get(q); },
      [this](const store_list& q) { on_list(q); },
      [this](store_put& q) { on_put(std::move(q)); },
      [this](const store_delete& q) { on_delete(q); },
      [this](const store_watch& w) { on_watch(w); },
      [this](const store_unwatch& q) {
        if (q.subscriber)
          remove_watch(q.subscriber.address(), q.tag);
      },
      [this](retry_atom, uint64_t id) {
        auto i = retries_.find(id);
        if (i == retries_.end())
          return;
        auto st = i->second;
        retries_.erase(i);
        attempt(st);
      },
      [this](wretry_atom, uint64_t http_tag) {
        auto* ws = by_http(http_tag);
        if (ws != nullptr)
          open_watch(*ws);
      },
      [this](eprogress_atom) { on_progress(); },
      [this](http_watch_line& l) { on_line(l); },
      [this](http_watch_ended& e) { on_ended(e); },
    };
  }

  void on_exit() override {
    for (auto& c : clients_)
      caf::anon_send_exit(c, caf::exit_reason::user_shutdown);
    clients_.clear();
    watches_.clear();
    retries_.clear();
    p_ = {};
  }

private:
  using watch_key = std::pair<caf::actor_addr, uint64_t>;

  caf::actor_clock::time_point now() {
    return clock().now();
  }

  // -- calls with failover ---------------------------------------------------------

  void call(std::string path, json body, call_done done) {
    auto st = std::make_shared<call_state>();
    st->path = std::move(path);
    st->body = body.dump();
    st->deadline = now() + std::chrono::milliseconds(p_.request_timeout_ms);
    st->member = preferred_;
    st->done = std::move(done);
    attempt(st);
  }

  void attempt(std::shared_ptr<call_state> st) {
    auto m = st->member;
    auto timeout = std::chrono::milliseconds(2 * p_.member_timeout_ms + 1000);
    request(clients_[m], timeout,
            http_fetch{"POST", st->path, {{"Content-Type", "application/json"}}, st->body})
      .then(
        [this, st, m](http::response& r) {
          if (r.status >= 500) {
            auto j = json::parse(r.body, nullptr, false);
            auto msg = j.is_object() ? str(j, "message") : std::string();
            failed(st, "status " + std::to_string(r.status) + (msg.empty() ? "" : ": " + msg));
            return;
          }
          auto j = json::parse(r.body, nullptr, false);
          if (!j.is_object()) {
            failed(st, "an answer that is not JSON");
            return;
          }
          preferred_ = m;
          if (r.status != 200) {
            auto msg = str(j, "message");
            store_errc code = store_errc::invalid;
            if (msg.find("space exceeded") != std::string::npos)
              code = store_errc::full;
            else if (msg.find("too large") != std::string::npos)
              code = store_errc::too_large;
            st->done(make_error(code, "etcd: " + msg));
            return;
          }
          st->done(std::move(j));
        },
        [this, st](caf::error& e) { failed(st, describe_http_error(e)); });
  }

  /// One member did not answer: the next one, a short pause after each
  /// round, until the deadline.
  void failed(std::shared_ptr<call_state> st, const std::string& why) {
    const auto& m = p_.members[st->member];
    st->last_error = m.host + ":" + std::to_string(m.port) + ": " + why;
    st->tries++;
    st->member = (st->member + 1) % clients_.size();
    if (now() >= st->deadline) {
      st->done(make_error(store_errc::unavailable,
                          "etcd: no member answered within "
                            + std::to_string(p_.request_timeout_ms) + " ms (last: "
                            + st->last_error + ")"));
      return;
    }
    if (st->tries % clients_.size() != 0) {
      attempt(st);
      return;
    }
    auto id = ++retry_seq_;
    retries_.emplace(id, st);
    auto rounds = std::min<size_t>(st->tries / clients_.size(), 5);
    delayed_send(this, std::chrono::milliseconds(50 * rounds), retry_atom::value, id);
  }

  // -- keys ----------------------------------------------------------------------------

  std::string full(const std::string& key) const {
    return p_.key_prefix + key;
  }

  /// The range of keys under `prefix` (within key_prefix).
  void range_of(json& j, const std::string& prefix) const {
    auto k = full(prefix);
    if (k.empty()) {
      j["key"] = b64(std::string(1, '\0'));
      j["range_end"] = b64(std::string(1, '\0'));
      return;
    }
    j["key"] = b64(k);
    j["range_end"] = b64(prefix_end(k));
  }

  bool record_of(const json& kv, store_record& out) const {
    auto key = unb64(str(kv, "key"));
    if (key.compare(0, p_.key_prefix.size(), p_.key_prefix) != 0)
      return false;
    out.key = key.substr(p_.key_prefix.size());
    out.value = unb64(str(kv, "value"));
    out.create_revision = u64(kv, "create_revision");
    out.mod_revision = u64(kv, "mod_revision");
    return true;
  }

  static uint64_t revision_of(const json& j) {
    return u64(member(j, "header"), "revision");
  }

  caf::error check_key(const std::string& key) const {
    if (key.empty())
      return make_error(store_errc::invalid, "empty key");
    if (key.size() > p_.limits.key_bytes_max)
      return make_error(store_errc::invalid, "key of " + std::to_string(key.size())
                                               + " bytes, over key_bytes_max "
                                               + std::to_string(p_.limits.key_bytes_max));
    if (key.find('\0') != std::string::npos)
      return make_error(store_errc::invalid, "key with a NUL byte");
    return {};
  }

  caf::error check_prefix(const std::string& prefix) const {
    return prefix.empty() ? caf::error{} : check_key(prefix);
  }

  static caf::error check_condition(int64_t expected) {
    if (expected < any_revision)
      return make_error(store_errc::invalid, "expected_mod_revision " + std::to_string(expected));
    return {};
  }

  // -- get, list ----------------------------------------------------------------------

  void on_get(const store_get& q) {
    auto rp = make_response_promise();
    if (auto err = check_key(q.key)) {
      rp.deliver(std::move(err));
      return;
    }
    json body{{"key", b64(full(q.key))}};
    call("/v3/kv/range", std::move(body), [this, rp](caf::expected<json> j) mutable {
      if (!j) {
        rp.deliver(std::move(j.error()));
        return;
      }
      store_get_result out;
      out.revision = revision_of(*j);
      for (auto& kv : array(*j, "kvs"))
        out.found = record_of(kv, out.record);
      rp.deliver(std::move(out));
    });
  }

  void on_list(const store_list& q) {
    auto rp = make_response_promise();
    if (auto err = check_prefix(q.prefix)) {
      rp.deliver(std::move(err));
      return;
    }
    auto limit = q.limit == 0 || q.limit > p_.limits.keys_max ? p_.limits.keys_max : q.limit;
    json body = json::object();
    range_of(body, q.prefix);
    body["limit"] = std::to_string(limit);
    call("/v3/kv/range", std::move(body), [this, rp, limit](caf::expected<json> j) mutable {
      if (!j) {
        rp.deliver(std::move(j.error()));
        return;
      }
      store_list_result out;
      out.revision = revision_of(*j);
      out.more = flag(*j, "more");
      for (auto& kv : array(*j, "kvs")) {
        store_record r;
        if (out.records.size() < limit && record_of(kv, r))
          out.records.push_back(std::move(r));
      }
      rp.deliver(std::move(out));
    });
  }

  // -- put, delete ----------------------------------------------------------------------

  void on_put(store_put q) {
    auto rp = make_response_promise();
    if (auto err = check_key(q.key)) {
      rp.deliver(std::move(err));
      return;
    }
    if (auto err = check_condition(q.expected_mod_revision)) {
      rp.deliver(std::move(err));
      return;
    }
    if (q.value.size() > p_.limits.value_bytes_max) {
      rp.deliver(make_error(store_errc::too_large,
                            "value of " + std::to_string(q.value.size())
                              + " bytes, over value_bytes_max "
                              + std::to_string(p_.limits.value_bytes_max)));
      return;
    }
    auto qp = std::make_shared<store_put>(std::move(q));
    check_room(qp, [this, qp, rp](caf::error err) mutable {
      if (err) {
        rp.deliver(std::move(err));
        return;
      }
      put_txn(qp, rp);
    });
  }

  bool count_fresh() {
    return counted_ && now() - counted_at_ < std::chrono::seconds(1);
  }

  /// keys_max, as the comment at the top says.
  void check_room(std::shared_ptr<store_put> q, std::function<void(caf::error)> then) {
    auto keys_max = p_.limits.keys_max;
    auto margin = keys_max / 16;
    if (q->expected_mod_revision > 0) {
      then({}); // replaces a record or fails: no new key
      return;
    }
    if (count_fresh() && key_count_ + margin + 1 < keys_max) {
      then({});
      return;
    }
    json body = json::object();
    range_of(body, "");
    body["count_only"] = true;
    call("/v3/kv/range", std::move(body), [this, q, then, keys_max](caf::expected<json> j) {
      if (!j) {
        then(std::move(j.error()));
        return;
      }
      counted_ = true;
      counted_at_ = now();
      key_count_ = u64(*j, "count");
      if (key_count_ < keys_max) {
        then({});
        return;
      }
      json kb{{"key", b64(full(q->key))}, {"count_only", true}};
      call("/v3/kv/range", std::move(kb), [then, keys_max](caf::expected<json> k) {
        if (!k) {
          then(std::move(k.error()));
          return;
        }
        if (u64(*k, "count") > 0)
          then({});
        else
          then(make_error(store_errc::full, "keys_max " + std::to_string(keys_max) + " reached"));
      });
    });
  }

  void put_txn(std::shared_ptr<store_put> q, caf::response_promise rp) {
    auto key = b64(full(q->key));
    json txn = json::object();
    txn["compare"] = json::array();
    if (q->expected_mod_revision == 0)
      txn["compare"].push_back(
        {{"target", "CREATE"}, {"key", key}, {"create_revision", "0"}});
    else if (q->expected_mod_revision > 0)
      txn["compare"].push_back({{"target", "MOD"},
                                {"key", key},
                                {"mod_revision", std::to_string(q->expected_mod_revision)}});
    txn["success"] = json::array(
      {{{"request_put", {{"key", key}, {"value", b64(q->value)}, {"prev_kv", true}}}}});
    txn["failure"] = json::array({{{"request_range", {{"key", key}}}}});
    call("/v3/kv/txn", std::move(txn), [this, q, rp](caf::expected<json> j) mutable {
      if (!j) {
        rp.deliver(std::move(j.error()));
        return;
      }
      store_put_result out;
      out.revision = revision_of(*j);
      auto& responses = array(*j, "responses");
      if (flag(*j, "succeeded")) {
        out.ok = true;
        out.exists = true;
        out.record.key = q->key;
        out.record.value = std::move(q->value);
        out.record.mod_revision = out.revision;
        out.record.create_revision = out.revision;
        bool existed = false;
        if (!responses.empty()) {
          auto& prev = member(member(responses[0], "response_put"), "prev_kv");
          if (!prev.empty()) {
            existed = true;
            out.record.create_revision = u64(prev, "create_revision");
          }
        }
        if (!existed && counted_)
          ++key_count_;
        wrote(out.revision);
      } else if (!responses.empty()) {
        for (auto& kv : array(member(responses[0], "response_range"), "kvs"))
          out.exists = record_of(kv, out.record);
      }
      rp.deliver(std::move(out));
    });
  }

  void on_delete(const store_delete& q) {
    auto rp = make_response_promise();
    if (auto err = check_key(q.key)) {
      rp.deliver(std::move(err));
      return;
    }
    if (auto err = check_condition(q.expected_mod_revision)) {
      rp.deliver(std::move(err));
      return;
    }
    auto key = b64(full(q.key));
    json txn = json::object();
    txn["compare"] = json::array();
    if (q.expected_mod_revision == 0) // "must not exist" makes no sense for a delete
      txn["compare"].push_back({{"target", "VERSION"}, {"key", key}, {"version", "-1"}});
    else if (q.expected_mod_revision > 0)
      txn["compare"].push_back({{"target", "MOD"},
                                {"key", key},
                                {"mod_revision", std::to_string(q.expected_mod_revision)}});
    txn["success"] = json::array({{{"request_delete_range", {{"key", key}, {"prev_kv", true}}}}});
    txn["failure"] = json::array({{{"request_range", {{"key", key}}}}});
    call("/v3/kv/txn", std::move(txn), [this, rp](caf::expected<json> j) mutable {
      if (!j) {
        rp.deliver(std::move(j.error()));
        return;
      }
      store_delete_result out;
      out.revision = revision_of(*j);
      auto& responses = array(*j, "responses");
      if (responses.empty()) {
        rp.deliver(std::move(out));
        return;
      }
      if (flag(*j, "succeeded")) {
        auto& dr = member(responses[0], "response_delete_range");
        for (auto& kv : array(dr, "prev_kvs")) {
          out.ok = out.existed = record_of(kv, out.previous);
        }
        if (out.ok) {
          if (counted_ && key_count_ > 0)
            --key_count_;
          wrote(out.revision);
        }
      } else {
        for (auto& kv : array(member(responses[0], "response_range"), "kvs"))
          out.existed = record_of(kv, out.previous);
      }
      rp.deliver(std::move(out));
    });
  }

  /// Keeps etcd's history to history_max revisions (see the top).
  void wrote(uint64_t revision) {
    auto keep = uint64_t{p_.limits.history_max};
    if (revision <= keep)
      return;
    auto target = revision - keep + 1;
    auto step = std::max<uint64_t>(1, keep / 8);
    if (target < compacted_ + step)
      return;
    compacted_ = target;
    call("/v3/kv/compaction", json{{"revision", std::to_string(target)}},
         [](caf::expected<json>) {}); // an older point than another's: refused, fine
  }

  // -- watches --------------------------------------------------------------------------

  watch_state* by_http(uint64_t http_tag) {
    auto i = by_http_.find(http_tag);
    if (i == by_http_.end())
      return nullptr;
    auto j = watches_.find(i->second);
    return j == watches_.end() ? nullptr : &j->second;
  }

  void on_watch(const store_watch& w) {
    auto rp = make_response_promise();
    caf::error err;
    if (!w.subscriber)
      err = make_error(store_errc::invalid, "watch without a subscriber");
    else if (auto e = check_prefix(w.prefix))
      err = std::move(e);
    else if (watches_.count({w.subscriber.address(), w.tag}) > 0)
      err = make_error(store_errc::invalid,
                       "watch tag " + std::to_string(w.tag) + " in use by its subscriber");
    else if (watches_.size() >= p_.limits.watches_max)
      err = make_error(store_errc::full,
                       "watches_max " + std::to_string(p_.limits.watches_max) + " reached");
    if (err) {
      rp.deliver(std::move(err));
      return;
    }
    auto key = watch_key{w.subscriber.address(), w.tag};
    auto& ws = watches_[key];
    ws.w = w;
    ws.rp = rp;
    ws.delivered = w.after;
    ws.member = preferred_;
    ws.resume_deadline = now() + std::chrono::milliseconds(p_.request_timeout_ms);
    if (subscribers_[key.first]++ == 0)
      monitor(w.subscriber);
    open_watch(ws);
    arm_progress();
  }

  void open_watch(watch_state& ws) {
    if (ws.http_tag != 0)
      by_http_.erase(ws.http_tag);
    ws.http_tag = ++http_seq_;
    by_http_[ws.http_tag] = {ws.w.subscriber.address(), ws.w.tag};
    json cr = json::object();
    range_of(cr, ws.w.prefix);
    cr["start_revision"] = std::to_string(ws.delivered + 1);
    cr["progress_notify"] = true;
    json body{{"create_request", cr}};
    http_watch hw;
    hw.target = "/v3/watch";
    hw.owner = this;
    hw.tag = ws.http_tag;
    hw.method = "POST";
    hw.body = body.dump();
    send(clients_[ws.member], std::move(hw));
  }

  void on_line(http_watch_line& l) {
    auto* ws = by_http(l.tag);
    if (ws == nullptr)
      return;
    auto j = json::parse(l.line, nullptr, false);
    if (!j.is_object())
      return;
    if (j.contains("error")) {
      watch_failed(*ws, "etcd: " + str(member(j, "error"), "message"));
      return;
    }
    const auto& r = member(j, "result");
    auto header_rev = revision_of(r);
    if (flag(r, "canceled")) {
      auto compact = u64(r, "compact_revision");
      if (compact > 0) {
        answer(*ws, header_rev);
        send(ws->w.subscriber, store_compacted{ws->w.tag, compact});
        remove_watch(ws->w.subscriber.address(), ws->w.tag);
        return;
      }
      watch_failed(*ws, "etcd canceled the watch: " + str(r, "cancel_reason"));
      return;
    }
    if (flag(r, "created")) {
      ws->tries = 0;
      preferred_ = ws->member;
      if (!ws->answered && header_rev < ws->delivered)
        ws->delivered = header_rev; // a watch in the future: progress says now
      answer(*ws, header_rev);
      return;
    }
    auto& events = array(r, "events");
    std::vector<store_change> changes;
    size_t revs = 0;
    uint64_t last_rev = 0;
    for (auto& ev : events) {
      store_change c;
      if (!record_of(member(ev, "kv"), c.record))
        continue;
      if (c.record.mod_revision != last_rev) {
        ++revs;
        last_rev = c.record.mod_revision;
      }
      if (c.record.mod_revision <= ws->delivered || c.record.mod_revision <= ws->w.after)
        continue; // seen before a resume
      if (str(ev, "type") == "DELETE") {
        c.type = store_event_type::del;
        c.record.value.clear();
        c.record.create_revision = 0;
      } else {
        c.created = u64(member(ev, "kv"), "version") == 1;
      }
      changes.push_back(std::move(c));
    }
    // The header is a progress mark unless more of a catch-up follows.
    uint64_t mark = revs < etcd_watch_batch_revs ? header_rev : 0;
    deliver(*ws, changes, mark);
  }

  void deliver(watch_state& ws, std::vector<store_change>& changes, uint64_t mark) {
    size_t i = 0;
    while (i < changes.size()) {
      auto n = std::min<size_t>(p_.limits.event_changes_max, changes.size() - i);
      std::vector<store_change> batch(std::make_move_iterator(changes.begin() + i),
                                      std::make_move_iterator(changes.begin() + i + n));
      i += n;
      ws.delivered = batch.back().record.mod_revision;
      auto rev = ws.delivered;
      if (i == changes.size() && mark > rev)
        rev = ws.delivered = mark;
      send(ws.w.subscriber, store_event{ws.w.tag, std::move(batch), rev});
    }
    if (changes.empty() && mark > ws.delivered && ws.answered)
      ws.delivered = mark;
  }

  void answer(watch_state& ws, uint64_t revision) {
    if (ws.answered)
      return;
    ws.answered = true;
    ws.rp.deliver(store_watch_started{ws.w.tag, revision});
  }

  void on_ended(http_watch_ended& e) {
    auto* ws = by_http(e.tag);
    if (ws == nullptr)
      return;
    watch_failed(*ws, e.what);
  }

  /// The member's stream is gone: resume from what was delivered on the
  /// next member; lost only when none could resume within request_timeout_ms.
  void watch_failed(watch_state& ws, const std::string& why) {
    const auto& m = p_.members[ws.member];
    ws.last_error = m.host + ":" + std::to_string(m.port) + ": " + why;
    if (ws.tries == 0)
      ws.resume_deadline = now() + std::chrono::milliseconds(p_.request_timeout_ms);
    ws.tries++;
    send(clients_[ws.member], http_unwatch{ws.http_tag});
    ws.member = (ws.member + 1) % clients_.size();
    if (now() >= ws.resume_deadline) {
      auto what = "etcd: no member could resume the watch within "
                  + std::to_string(p_.request_timeout_ms) + " ms (last: " + ws.last_error + ")";
      if (!ws.answered) {
        ws.rp.deliver(make_error(store_errc::unavailable, what));
      } else {
        send(ws.w.subscriber, store_watch_lost{ws.w.tag, what});
      }
      remove_watch(ws.w.subscriber.address(), ws.w.tag);
      return;
    }
    auto rounds = std::min<size_t>(ws.tries / clients_.size(), 5);
    by_http_.erase(ws.http_tag);
    ws.http_tag = ++http_seq_;
    by_http_[ws.http_tag] = {ws.w.subscriber.address(), ws.w.tag};
    delayed_send(this, std::chrono::milliseconds(20 + 50 * rounds), wretry_atom::value,
                 ws.http_tag);
  }

  void remove_watch(const caf::actor_addr& subscriber, uint64_t tag) {
    auto i = watches_.find({subscriber, tag});
    if (i == watches_.end())
      return;
    if (i->second.http_tag != 0) {
      send(clients_[i->second.member], http_unwatch{i->second.http_tag});
      by_http_.erase(i->second.http_tag);
    }
    watches_.erase(i);
    auto s = subscribers_.find(subscriber);
    if (s != subscribers_.end() && --s->second == 0) {
      subscribers_.erase(s);
      demonitor(subscriber);
    }
  }

  void drop(const caf::actor_addr& subscriber) {
    std::vector<uint64_t> tags;
    for (auto& [k, ws] : watches_)
      if (k.first == subscriber)
        tags.push_back(k.second);
    for (auto t : tags)
      remove_watch(subscriber, t);
    subscribers_.erase(subscriber);
  }

  void arm_progress() {
    if (progress_armed_)
      return;
    progress_armed_ = true;
    delayed_send(this, std::chrono::milliseconds(p_.limits.progress_interval_ms),
                 eprogress_atom::value);
  }

  void on_progress() {
    progress_armed_ = false;
    if (watches_.empty())
      return;
    for (auto& [k, ws] : watches_)
      if (ws.answered)
        send(ws.w.subscriber, store_event{ws.w.tag, {}, ws.delivered});
    arm_progress();
  }

  etcd_store_params p_;
  std::vector<caf::actor> clients_;
  size_t preferred_ = 0;
  std::map<uint64_t, std::shared_ptr<call_state>> retries_;
  uint64_t retry_seq_ = 0;
  std::map<watch_key, watch_state> watches_;
  std::map<uint64_t, watch_key> by_http_;
  std::map<caf::actor_addr, uint32_t> subscribers_;
  uint64_t http_seq_ = 0;
  bool progress_armed_ = false;
  bool counted_ = false;
  caf::actor_clock::time_point counted_at_;
  uint64_t key_count_ = 0;
  uint64_t compacted_ = 0;
};

} // namespace

bool parse_etcd_url(const std::string& text, std::vector<etcd_member>& out, std::string& error) {
  out.clear();
  const std::string scheme = "etcd:";
  if (text.compare(0, scheme.size(), scheme) != 0) {
    error = "store: want etcd:http://HOST:PORT[,http://HOST:PORT...]";
    return false;
  }
  auto rest = text.substr(scheme.size());
  size_t start = 0;
  while (start <= rest.size()) {
    auto comma = rest.find(',', start);
    auto url = rest.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    start = comma == std::string::npos ? rest.size() + 1 : comma + 1;
    if (url.compare(0, 7, "http://") != 0) {
      error = "etcd member \"" + url + "\": want http://HOST:PORT (plain HTTP, a private network)";
      return false;
    }
    auto hp = url.substr(7);
    if (!hp.empty() && hp.back() == '/')
      hp.pop_back();
    auto colon = hp.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == hp.size()
        || hp.find('/') != std::string::npos) {
      error = "etcd member \"" + url + "\": want http://HOST:PORT";
      return false;
    }
    unsigned long port = 0;
    auto digits = hp.substr(colon + 1);
    if (digits.size() > 5 || digits.find_first_not_of("0123456789") != std::string::npos
        || (port = std::stoul(digits)) == 0 || port > 65535) {
      error = "etcd member \"" + url + "\": bad port";
      return false;
    }
    if (out.size() >= members_max) {
      error = "more than " + std::to_string(members_max) + " etcd members";
      return false;
    }
    out.push_back({hp.substr(0, colon), static_cast<uint16_t>(port)});
  }
  if (out.empty()) {
    error = "store: no etcd member";
    return false;
  }
  return true;
}

caf::actor spawn_etcd_store(caf::actor_system& sys, etcd_store_params p) {
  return sys.spawn<etcd_store>(std::move(p));
}

} // namespace drtp::control
