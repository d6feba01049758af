#include "net/wire/handshake.hpp"

namespace drtp::net {

namespace {

void append_len(std::string& out, size_t n) {
  for (int i = 3; i >= 0; --i)
    out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
}

} // namespace

std::string proof_transcript(const chunk& hello_payload,
                             const chunk& challenge_payload) {
  std::string transcript = "drtp-proof-v1";
  append_len(transcript, hello_payload.size());
  transcript.append(hello_payload.data(), hello_payload.size());
  append_len(transcript, challenge_payload.size());
  transcript.append(challenge_payload.data(), challenge_payload.size());
  return transcript;
}

std::string make_proof(crypto& c, const std::string& key,
                       const chunk& hello_payload, const chunk& challenge_payload) {
  return c.hmac_sha256(key, proof_transcript(hello_payload, challenge_payload));
}

} // namespace drtp::net
