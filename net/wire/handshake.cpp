#include "net/wire/handshake.hpp"

namespace drtp::net {

namespace {

void append_len(std::string& out, size_t n) {
  for (int i = 3; i >= 0; --i)
    out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
}

std::string salt(const char* kind, const std::string& name) {
  std::string out = "drtp-login-key-v1";
  out.push_back('\0');
  out += kind;
  out.push_back('\0');
  out += name;
  return out;
}

} // namespace

std::string service_salt(const std::string& service) {
  return salt("service", service);
}

std::string principal_salt(const std::string& principal) {
  return salt("principal", principal);
}

std::string proof_transcript(const std::string& channel_binding, const chunk& hello_payload,
                             const chunk& challenge_payload) {
  std::string transcript = "drtp-proof-v2";
  append_len(transcript, channel_binding.size());
  transcript += channel_binding;
  append_len(transcript, hello_payload.size());
  transcript.append(hello_payload.data(), hello_payload.size());
  append_len(transcript, challenge_payload.size());
  transcript.append(challenge_payload.data(), challenge_payload.size());
  return transcript;
}

std::string make_proof(crypto& c, const std::string& seed,
                       const std::string& channel_binding, const chunk& hello_payload,
                       const chunk& challenge_payload) {
  return c.sign(seed, proof_transcript(channel_binding, hello_payload, challenge_payload));
}

std::string renew_message(const std::string& channel_binding, const std::string& cert_pem) {
  std::string m = "drtp-renew-v1";
  append_len(m, channel_binding.size());
  m += channel_binding;
  append_len(m, cert_pem.size());
  m += cert_pem;
  return m;
}

bool check_proof(crypto& c, const std::string& public_key, const std::string& proof,
                 const std::string& channel_binding, const chunk& hello_payload,
                 const chunk& challenge_payload) {
  return c.verify(public_key,
                  proof_transcript(channel_binding, hello_payload, challenge_payload),
                  proof);
}

} // namespace drtp::net
