#include "net/wire/control.hpp"

#include <sstream>
#include <streambuf>

#include <cereal/archives/portable_binary.hpp>

namespace drtp::net {

namespace {

/// A string whose length is checked against `Max` before it is allocated.
template <size_t Max>
struct bounded {
  std::string& s;

  template <class Archive>
  void save(Archive& ar) const {
    auto n = static_cast<uint16_t>(std::min(s.size(), Max));
    ar(n);
    ar(cereal::binary_data(s.data(), n));
  }

  template <class Archive>
  void load(Archive& ar) {
    uint16_t n = 0;
    ar(n);
    if (n > Max)
      throw cereal::Exception("string exceeds its limit");
    s.resize(n);
    ar(cereal::binary_data(s.data(), n));
  }
};

/// A bool as one byte that must be 0 or 1: loading any other value into a
/// bool is undefined behaviour, and a peer may send any byte.
struct strict_bool {
  bool& b;

  template <class Archive>
  void save(Archive& ar) const {
    ar(static_cast<uint8_t>(b ? 1 : 0));
  }

  template <class Archive>
  void load(Archive& ar) {
    uint8_t v = 0;
    ar(v);
    if (v > 1)
      throw cereal::Exception("a bool is 0 or 1");
    b = v == 1;
  }
};

/// The hello's role and its certificate flag, one byte (see
/// role_certificate_bit).
struct role_byte {
  uint8_t& role;
  bool& certificate;

  template <class Archive>
  void save(Archive& ar) const {
    ar(static_cast<uint8_t>(role | (certificate ? role_certificate_bit : 0)));
  }

  template <class Archive>
  void load(Archive& ar) {
    uint8_t v = 0;
    ar(v);
    certificate = (v & role_certificate_bit) != 0;
    role = static_cast<uint8_t>(v & ~role_certificate_bit);
  }
};

} // namespace

template <class Archive>
void serialize(Archive& ar, hello_msg& x) {
  ar(x.version, bounded<name_bytes_max>{x.service},
     bounded<name_bytes_max>{x.agent_id}, role_byte{x.role, x.certificate});
}

template <class Archive>
void serialize(Archive& ar, challenge_msg& x) {
  ar(bounded<nonce_bytes>{x.nonce});
}

template <class Archive>
void serialize(Archive& ar, proof_msg& x) {
  ar(bounded<proof_bytes>{x.signature});
}

template <class Archive>
void serialize(Archive& ar, accept_msg& x) {
  ar(bounded<name_bytes_max>{x.tunnel_id}, x.heartbeat_interval_ms);
}

template <class Archive>
void serialize(Archive& ar, reject_msg& x) {
  ar(x.code, bounded<reason_bytes_max>{x.message});
}

template <class Archive>
void serialize(Archive& ar, open_msg& x) {
  ar(bounded<name_bytes_max>{x.peer}, strict_bool{x.resumable},
     strict_bool{x.resume},
     bounded<session_id_bytes>{x.session_id},
     bounded<name_bytes_max>{x.agent_id}, bounded<name_bytes_max>{x.principal});
}

template <class Archive>
void serialize(Archive& ar, goaway_msg& x) {
  ar(x.code, bounded<reason_bytes_max>{x.message});
}

template <class Archive>
void serialize(Archive& ar, renew_msg& x) {
  ar(bounded<renew_cert_bytes_max>{x.cert_pem}, bounded<proof_bytes>{x.signature});
}

namespace {

/// Reads a chunk in place, without copying it into a stringstream.
struct chunk_buf : std::streambuf {
  explicit chunk_buf(const chunk& c) {
    auto p = const_cast<char*>(c.data());
    setg(p, p, p + c.size());
  }
};

template <class T>
chunk encode_any(const T& x) {
  std::ostringstream out;
  {
    cereal::PortableBinaryOutputArchive ar{out};
    ar(const_cast<T&>(x));
  }
  return chunk::copy_of(out.str());
}

template <class T>
bool decode_any(const chunk& in, T& x) {
  if (in.size() > 4096)
    return false;
  chunk_buf buf{in};
  std::istream is{&buf};
  try {
    cereal::PortableBinaryInputArchive ar{is};
    ar(x);
  } catch (const std::exception&) {
    return false;
  }
  // Trailing garbage is a protocol error too.
  return is.peek() == std::char_traits<char>::eof();
}

} // namespace

const char* to_string(reject_code c) noexcept {
  switch (c) {
    case reject_code::bad_version: return "unsupported protocol version";
    case reject_code::unknown_service: return "unknown service";
    case reject_code::bad_proof: return "wrong secret";
    case reject_code::handshake_timeout: return "handshake timed out";
    case reject_code::draining: return "POP is draining";
    case reject_code::protocol_error: return "protocol error";
    case reject_code::not_authorized: return "not authorized for this service";
    case reject_code::unknown_principal: return "unknown principal or wrong secret";
    case reject_code::bad_certificate: return "certificate refused";
  }
  return "rejected";
}

chunk encode(const hello_msg& x) { return encode_any(x); }
chunk encode(const challenge_msg& x) { return encode_any(x); }
chunk encode(const proof_msg& x) { return encode_any(x); }
chunk encode(const accept_msg& x) { return encode_any(x); }
chunk encode(const reject_msg& x) { return encode_any(x); }
chunk encode(const open_msg& x) { return encode_any(x); }
chunk encode(const goaway_msg& x) { return encode_any(x); }
chunk encode(const renew_msg& x) { return encode_any(x); }

bool decode(const chunk& in, hello_msg& x) { return decode_any(in, x); }
bool decode(const chunk& in, challenge_msg& x) { return decode_any(in, x); }
bool decode(const chunk& in, proof_msg& x) { return decode_any(in, x); }
bool decode(const chunk& in, accept_msg& x) { return decode_any(in, x); }
bool decode(const chunk& in, reject_msg& x) { return decode_any(in, x); }
bool decode(const chunk& in, open_msg& x) { return decode_any(in, x); }
bool decode(const chunk& in, goaway_msg& x) { return decode_any(in, x); }
bool decode(const chunk& in, renew_msg& x) { return decode_any(in, x); }

} // namespace drtp::net
