#include "common/net/tls.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <array>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/error.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>

namespace ee::net {
namespace {

namespace ssl = boost::asio::ssl;
using boost::system::error_code;

// Mozilla's "intermediate" TLS 1.2 list: ECDHE key exchange (forward secrecy) with AEAD ciphers only.
// TLS 1.3 suites are all AEAD and keep OpenSSL's defaults.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

std::string quoted(const std::filesystem::path& p) {
  return "'" + p.string() + "'";
}

// Asio stores OpenSSL's packed error in an int; ERR_GET_LIB/ERR_GET_REASON take it back as unsigned long.
unsigned long openssl_code(const error_code& ec) {
  return static_cast<unsigned long>(static_cast<unsigned int>(ec.value()));
}

std::string time_text(const ASN1_TIME* t) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (!bio) return "?";
  ASN1_TIME_print(bio, t);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string text(data, n > 0 ? static_cast<std::size_t>(n) : 0);
  BIO_free(bio);
  return text;
}

void require_readable(const std::filesystem::path& path, const char* what) {
  if (path.empty()) throw TlsConfigError(std::string("no ") + what + " file given");
  std::ifstream in(path);
  if (!in) throw TlsConfigError(std::string(what) + " file " + quoted(path) + ": " + std::strerror(errno));
}

ssl::context make_context(ssl::context::method method, const TlsFiles& files) {
  require_readable(files.cert, "certificate");
  require_readable(files.key, "private key");
  require_readable(files.ca, "CA");

  ssl::context ctx(method);
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                  ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::no_compression);
  SSL_CTX* native = ctx.native_handle();
  if (SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_cipher_list(native, kTls12Ciphers) != 1)
    throw TlsConfigError("OpenSSL refused the TLS 1.2+ protocol or cipher settings");
  // An encrypted key would otherwise make OpenSSL prompt on the terminal; a daemon must fail instead.
  ctx.set_password_callback([](std::size_t, ssl::context::password_purpose) { return std::string(); });

  error_code ec;
  ctx.use_certificate_chain_file(files.cert.string(), ec);
  if (ec)
    throw TlsConfigError("certificate file " + quoted(files.cert) +
                         " is not a PEM certificate: " + ec.message());
  // Peers would refuse it anyway, each with a less helpful message than this one.
  X509* leaf = SSL_CTX_get0_certificate(native);
  if (X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0)
    throw TlsConfigError("certificate file " + quoted(files.cert) + " expired on " +
                         time_text(X509_get0_notAfter(leaf)));
  if (X509_cmp_current_time(X509_get0_notBefore(leaf)) > 0)
    throw TlsConfigError("certificate file " + quoted(files.cert) + " is not valid before " +
                         time_text(X509_get0_notBefore(leaf)));
  ctx.use_private_key_file(files.key.string(), ssl::context::pem, ec);
  if (ec) {
    const unsigned long code = openssl_code(ec);
    if (ERR_GET_LIB(code) == ERR_LIB_X509 && ERR_GET_REASON(code) == X509_R_KEY_VALUES_MISMATCH)
      throw TlsConfigError("private key " + quoted(files.key) + " does not belong to certificate " +
                           quoted(files.cert));
    throw TlsConfigError("private key file " + quoted(files.key) +
                         " is not an unencrypted PEM private key: " + ec.message());
  }
  ctx.load_verify_file(files.ca.string(), ec);
  if (ec) throw TlsConfigError("CA file " + quoted(files.ca) + " holds no PEM certificate: " + ec.message());
  return ctx;
}

}  // namespace

ssl::context make_server_tls_context(const TlsFiles& files) {
  ssl::context ctx = make_context(ssl::context::tls_server, files);
  ctx.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  SSL_CTX* native = ctx.native_handle();
  // The CertificateRequest names the acceptable CA, so a client holding several certificates can pick.
  if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(files.ca.c_str()))
    SSL_CTX_set_client_CA_list(native, names);
  // Without a session id context OpenSSL fails every resumption attempt on a verify_peer server.
  static constexpr std::array<unsigned char, 8> kSessionContext{'e', 'e', '-', 'c', 'l', 'o', 'u', 'd'};
  SSL_CTX_set_session_id_context(native, kSessionContext.data(), kSessionContext.size());
  // Client-initiated TLS 1.2 renegotiation only costs the server CPU.
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION);
  return ctx;
}

ssl::context make_client_tls_context(const TlsFiles& files) {
  ssl::context ctx = make_context(ssl::context::tls_client, files);
  ctx.set_verify_mode(ssl::verify_peer);
  return ctx;
}

void set_server_name(SSL* ssl, const std::string& name) {
  if (name.empty()) throw std::invalid_argument("set_server_name: empty server name");
  error_code ec;
  boost::asio::ip::make_address(name, ec);
  const bool is_ip = !ec;
  bool ok = true;
  if (is_ip) {
    ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str()) == 1;
  } else {
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    ok = SSL_set_tlsext_host_name(ssl, name.c_str()) == 1 && SSL_set1_host(ssl, name.c_str()) == 1;
  }
  if (!ok) throw std::invalid_argument("set_server_name: OpenSSL refused server name '" + name + "'");
}

std::string_view to_string(TlsFailure failure) {
  switch (failure) {
    case TlsFailure::no_client_cert:
      return "no_client_cert";
    case TlsFailure::unknown_ca:
      return "unknown_ca";
    case TlsFailure::expired:
      return "expired";
    case TlsFailure::not_yet_valid:
      return "not_yet_valid";
    case TlsFailure::self_signed:
      return "self_signed";
    case TlsFailure::name_mismatch:
      return "name_mismatch";
    case TlsFailure::protocol_version:
      return "protocol_version";
    case TlsFailure::not_tls:
      return "not_tls";
    case TlsFailure::timeout:
      return "timeout";
    case TlsFailure::other:
      return "other";
  }
  return "other";
}

TlsFailure classify_handshake_failure(const error_code& ec, long verify_result) {
  switch (verify_result) {
    case X509_V_OK:
      break;
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return TlsFailure::expired;
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return TlsFailure::not_yet_valid;
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
      return TlsFailure::self_signed;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
      return TlsFailure::name_mismatch;
    default:
      // Unknown issuer, bad signature, untrusted root in the chain, ...: the chain is not ours.
      return TlsFailure::unknown_ca;
  }
  if (ec == boost::beast::error::timeout || ec == boost::asio::error::timed_out) return TlsFailure::timeout;
  if (ec.category() != boost::asio::error::get_ssl_category()) return TlsFailure::other;
  const unsigned long code = openssl_code(ec);
  if (ERR_GET_LIB(code) != ERR_LIB_SSL) return TlsFailure::other;
  switch (ERR_GET_REASON(code)) {
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:  // the client's view of the same refusal
      return TlsFailure::no_client_cert;
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
      return TlsFailure::unknown_ca;
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
      return TlsFailure::expired;
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_NO_PROTOCOLS_AVAILABLE:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
      return TlsFailure::protocol_version;
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_UNKNOWN_PROTOCOL:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_RECORD_LENGTH_MISMATCH:
      return TlsFailure::not_tls;
    default:
      return TlsFailure::other;
  }
}

std::string peer_common_name(SSL* ssl) {
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (!cert) return {};
  X509_NAME* subject = X509_get_subject_name(cert);
  const int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (index < 0) return {};
  unsigned char* utf8 = nullptr;
  const int length =
      ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index)));
  if (length < 0) return {};
  std::string cn(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(length));
  OPENSSL_free(utf8);
  return cn;
}

}  // namespace ee::net
