#pragma once
// Mutual TLS between ee-edge (client) and ee-cloud (server): context builders with the project's policy and
// a fixed classification of failed handshakes for logs and the handshake-failure metric.
//
// Policy, both sides: TLS 1.2 and 1.3 only, forward-secret AEAD cipher suites, the peer's chain and validity
// dates verified by OpenSSL against one CA file. The server requires a client certificate; the client checks
// that the server's certificate names the host it dialled (set per connection: set_server_name).
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/system/error_code.hpp>
#include <concepts>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

namespace ee::net {

// A PEM certificate chain (leaf first), its private key and the CA that must have signed the peer's chain.
struct TlsFiles {
  std::filesystem::path cert;
  std::filesystem::path key;
  std::filesystem::path ca;
};

// The daemons' TLS stream, and whether a session's stream is it (sessions are templates over it and the
// plaintext socket of --insecure).
using TlsSocket = boost::asio::ssl::stream<boost::asio::ip::tcp::socket>;
template <class Stream>
inline constexpr bool kIsTls = std::is_same_v<Stream, TlsSocket>;

// A file that is missing, unreadable or not what it should be, an own certificate outside its validity dates,
// or a key that does not belong to the certificate. what() names the file(s) and OpenSSL's reason.
class TlsConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws TlsConfigError.
boost::asio::ssl::context make_server_tls_context(const TlsFiles& files);
boost::asio::ssl::context make_client_tls_context(const TlsFiles& files);

// asio::ssl::stream<...> or beast::ssl_stream<...>: anything with OpenSSL's handle.
template <typename S>
concept TlsStream = requires(S& s) {
  { s.native_handle() } -> std::convertible_to<SSL*>;
};

// On a client connection, before the handshake: sends `name` as SNI (unless it is an IP address, which SNI
// may not carry) and makes the handshake fail unless the server's certificate matches it (RFC 2818/6125:
// subject alternative names, DNS wildcards in the leftmost label, IP addresses exactly). OpenSSL does the
// check during chain verification, so a mismatch is reported like any other verify failure
// (TlsFailure::name_mismatch). Throws std::invalid_argument for an empty name.
void set_server_name(SSL* ssl, const std::string& name);
void set_server_name(TlsStream auto& stream, const std::string& name) {
  set_server_name(stream.native_handle(), name);
}

// Why a handshake failed, as a small fixed set (a metric label must not carry free text).
enum class TlsFailure {
  no_client_cert,    // the server required a certificate and the client sent none
  unknown_ca,        // the chain does not lead to the configured CA (another CA, a same-named impostor)
  expired,           // a certificate of the chain is past its notAfter
  not_yet_valid,     // a certificate of the chain is before its notBefore
  self_signed,       // the peer presented a self-signed certificate not in the trust store
  name_mismatch,     // client side: the server's certificate does not name the host dialled
  protocol_version,  // no common protocol version (e.g. a TLS 1.1 client)
  not_tls,           // the bytes received are not a TLS record (plaintext on the TLS port)
  timeout,           // the handshake deadline passed (beast::error::timeout, asio::error::timed_out)
  other,
};

// The label value: "no_client_cert", "unknown_ca", ... (the enumerator's name).
std::string_view to_string(TlsFailure failure);

// `ec` is the handshake's error; `verify_result` is SSL_get_verify_result() of the connection (X509_V_OK when
// no verification failed). A verify result, when there is one, takes precedence over the TLS-level reason.
TlsFailure classify_handshake_failure(const boost::system::error_code& ec, long verify_result);
TlsFailure classify_handshake_failure(TlsStream auto& stream, const boost::system::error_code& ec) {
  return classify_handshake_failure(ec, SSL_get_verify_result(stream.native_handle()));
}

// The peer certificate's subject CN (after a successful handshake: the edge's name), or "" if none.
std::string peer_common_name(SSL* ssl);

}  // namespace ee::net
