#include "ctl/client.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "actors/http_client.hpp"
#include "caf/all.hpp"
#include "cli/args.hpp"
#include "cli/control_endpoint.hpp"
#include "cli/secrets.hpp"
#include "control/resource.hpp"
#include "net/openssl_crypto.hpp"
#include "net/runtime.hpp"
#include "net/stderr_tracer.hpp"
#include "net/wire/hex.hpp"

namespace drtp::ctl {

namespace {

constexpr uint32_t connect_timeout_ms = 5000;
constexpr uint32_t request_timeout_ms = 10000;
/// The client's own deadline plus a margin: a fetch always ends.
constexpr uint32_t fetch_deadline_ms = connect_timeout_ms + request_timeout_ms + 5000;
constexpr size_t error_excerpt_bytes_max = 200;

/// Without -v the network's traces (lifecycle lines) are not the
/// operator's business: drtpctl prints its own one-line errors.
class quiet_tracer : public net::tracer {
public:
  void emit(const std::string&, const std::string&, const std::string&) override {
  }
};

std::optional<std::string> env_value(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v)
    return std::nullopt;
  return std::string(v);
}

bool contains_nocase(std::string text, const std::string& needle) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text.find(needle) != std::string::npos;
}

/// One printable line, at most error_excerpt_bytes_max bytes (an answer is
/// the network's, so it is not trusted to be short or clean).
std::string one_line(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (out.size() >= error_excerpt_bytes_max) {
      out += "...";
      break;
    }
    auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7f) ? ' ' : c;
  }
  while (!out.empty() && out.back() == ' ')
    out.pop_back();
  return out;
}

/// Resources nest a few levels; an answer nested deeper is refused before
/// any code (printing, JSON's own recursion) walks it.
constexpr int answer_depth_max = 64;

} // namespace

connection_options resolve_options(const std::optional<std::string>& url,
                                   const std::optional<std::string>& pin,
                                   const std::optional<std::string>& ca,
                                   const std::optional<std::string>& token_file, int verbosity) {
  connection_options o;
  o.verbosity = verbosity;
  auto u = url ? url : env_value("DRTP_CONTROL");
  if (!u)
    throw cli::error("no control plane: pass --control https://HOST:PORT (or set DRTP_CONTROL)");
  o.url = *u;
  if (ca) {
    o.ca_file = *ca;
  } else if (auto p = pin ? pin : env_value("DRTP_CONTROL_PIN")) {
    o.pin = *p;
  }
  if (o.pin.empty() && o.ca_file.empty())
    throw cli::error("how to verify the control plane: pass --pin sha256:HEX or --ca FILE "
                     "(or set DRTP_CONTROL_PIN)");
  auto tf = token_file ? token_file : env_value("DRTP_TOKEN_FILE");
  if (!tf && !env_value("DRTP_TOKEN"))
    throw cli::error("no admin token: pass --token-file FILE (or set DRTP_TOKEN_FILE)");
  o.token = cli::read_secret(tf, "DRTP_TOKEN");
  if (o.token.empty())
    throw cli::error("the admin token is empty" + (tf ? " (" + *tf + ")" : std::string()));
  return o;
}

struct client::impl {
  connection_options o;
  std::string host;
  uint16_t port = cli::control_port_default;
  std::unique_ptr<net::runtime> rt;
  caf::actor http;
  bool stopped = false;

  std::shared_ptr<const net::tls_client_config> tls;

  void parse_url() {
    std::optional<std::string> pin, ca;
    if (!o.ca_file.empty())
      ca = o.ca_file;
    else
      pin = o.pin;
    auto cp = cli::parse_control_endpoint(o.url, pin, ca, {"--control", "--pin", "--ca"});
    host = cp.host;
    port = cp.port;
    tls = cp.tls;
  }

  void start() {
    std::shared_ptr<net::tracer> trace;
    if (o.verbosity > 0)
      trace = net::make_stderr_tracer(1);
    else
      trace = std::make_shared<quiet_tracer>();
    rt = std::make_unique<net::runtime>(trace, std::nullopt, 0);
    http_client_params p;
    p.e.io = rt->io();
    p.e.trace = rt->trace();
    p.e.rng = net::make_system_entropy();
    p.e.crypto = net::make_openssl_crypto();
    p.e.host = "drtpctl";
    p.e.clock = rt->clock();
    p.host = host;
    p.port = port;
    p.tls = tls;
    auto header = "Bearer " + o.token;
    p.authorization = [header](const std::string&) { return header; };
    p.connect_timeout_ms = connect_timeout_ms;
    p.request_timeout_ms = request_timeout_ms;
    p.name = "drtpctl";
    http = spawn_http_client(rt->sys(), std::move(p));
  }

  [[noreturn]] void unreachable(std::string why) {
    // The layers below each name the address ("cannot connect: H:P:
    // connect to H:P: refused"); the URL is said once here.
    auto named = host + ":" + std::to_string(port) + ": ";
    auto last = why.rfind(named);
    if (last != std::string::npos)
      why = why.substr(last + named.size());
    std::string line = "cannot reach the control plane at " + o.url + ": " + one_line(why);
    if (contains_nocase(why, "tls") || contains_nocase(why, "certificate")
        || contains_nocase(why, "fingerprint") || contains_nocase(why, "handshake"))
      line += o.ca_file.empty() ? " (does --pin match its certificate?)"
                                : " (is its certificate signed by --ca?)";
    throw failure(line);
  }
};

client::client(connection_options o) : impl_(std::make_unique<impl>()) {
  impl_->o = std::move(o);
  impl_->parse_url();
  impl_->start();
}

client::~client() {
  stop();
}

const std::string& client::url() const {
  return impl_->o.url;
}

const std::string& client::pin() const {
  return impl_->o.pin;
}

void client::stop() {
  if (impl_->stopped || !impl_->rt)
    return;
  impl_->stopped = true;
  caf::anon_send_exit(impl_->http, caf::exit_reason::user_shutdown);
  impl_->http = nullptr;
  impl_->rt->stop();
}

reply client::fetch(const std::string& method, const std::string& target,
                    const std::string& body) {
  http_fetch f;
  f.method = method;
  f.target = target;
  f.headers.emplace_back("Accept", "application/json");
  if (!body.empty())
    f.headers.emplace_back("Content-Type", "application/json");
  f.body = body;
  reply out;
  std::string error;
  {
    caf::scoped_actor self{impl_->rt->sys()};
    self->request(impl_->http, std::chrono::milliseconds(fetch_deadline_ms), std::move(f))
      .receive(
        [&](http::response& r) {
          out.status = r.status;
          out.body = std::move(r.body);
        },
        [&](caf::error& e) { error = describe_http_error(e); });
  }
  if (out.status == 0)
    impl_->unreachable(error.empty() ? "no answer" : error);
  if (control::json_depth(out.body) > answer_depth_max)
    throw failure("the control plane at " + impl_->o.url + " answered JSON nested deeper than "
                  + std::to_string(answer_depth_max) + " levels");
  if (out.status == 401)
    throw failure("the control plane at " + impl_->o.url
                  + " refused the admin token (401 Unauthorized): check --token-file");
  return out;
}

std::string api_path(control::kind k, const std::string& name) {
  std::string p = std::string(control::api_base) + "/" + control::kind_plural(k);
  if (!name.empty())
    p += "/" + http::url_encode(name);
  return p;
}

std::string error_message(const reply& r) {
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (j.is_object()) {
    auto m = j.find("message");
    if (m != j.end() && m->is_string())
      return one_line(m->get<std::string>());
  }
  auto text = one_line(r.body);
  return text.empty() ? "HTTP " + std::to_string(r.status) : text;
}

} // namespace drtp::ctl
