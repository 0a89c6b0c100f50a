// ee::net TLS: the mutual-TLS policy with real handshakes between a server and a client on 127.0.0.1, using
// certificates that deploy/gen-certs.sh makes in a temporary directory. Every refused peer must be refused
// with the right reason, and the good client must get through. Every wait is bounded.
#include "common/net/tls.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>

namespace ee::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace ssl = asio::ssl;
namespace fs = std::filesystem;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr auto kBound = std::chrono::seconds(10);
const std::string kGreeting = "hello";

class Tls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string templ = (fs::temp_directory_path() / "ee_tls_test_XXXXXX").string();
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
    const std::string cmd = "bash '" + std::string(EE_SOURCE_DIR) + "/deploy/gen-certs.sh' --test-certs '" +
                            dir_.string() + "' edge-1 > '" + (dir_ / "gen-certs.log").string() + "' 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << "gen-certs.sh failed, see " << dir_ / "gen-certs.log";
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  static fs::path file(const std::string& name) { return dir_ / name; }
  static TlsFiles server_files() { return {file("server.crt"), file("server.key"), file("ca.crt")}; }
  static TlsFiles client_files(const std::string& name, const std::string& ca = "ca.crt") {
    return {file(name + ".crt"), file(name + ".key"), file(ca)};
  }

  static fs::path dir_;
};
fs::path Tls::dir_;

// One server handshake on a loopback port, and one client of some kind, on one io_context.
struct Handshake {
  asio::io_context io;
  tcp::acceptor acceptor{io, tcp::endpoint(asio::ip::address_v4::loopback(), 0)};
  std::optional<ssl::stream<beast::tcp_stream>> server, client;
  std::optional<tcp::socket> raw;

  bool server_done = false;
  error_code server_ec;
  TlsFailure server_reason = TlsFailure::other;
  std::string server_saw_cn, server_saw_sni;

  bool client_done = false;
  error_code
      client_ec;  // the handshake's error, or the first read's (TLS 1.3 refuses after the client's side)
  std::optional<TlsFailure> client_reason;  // set when the client's own handshake failed
  std::string client_received;

  // On success the server sends kGreeting and closes.
  void serve(ssl::context& ctx, std::chrono::milliseconds deadline = std::chrono::seconds(5)) {
    acceptor.async_accept([this, &ctx, deadline](error_code ec, tcp::socket socket) {
      ASSERT_FALSE(ec) << ec.message();
      server.emplace(beast::tcp_stream(std::move(socket)), ctx);
      beast::get_lowest_layer(*server).expires_after(deadline);
      server->async_handshake(ssl::stream_base::server, [this](error_code hec) {
        if (hec) {
          server_ec = hec;
          server_reason = classify_handshake_failure(*server, hec);
          server_done = true;
          beast::get_lowest_layer(*server).close();
          return;
        }
        server_saw_cn = peer_common_name(server->native_handle());
        if (const char* sni = SSL_get_servername(server->native_handle(), TLSEXT_NAMETYPE_host_name))
          server_saw_sni = sni;
        asio::async_write(*server, asio::buffer(kGreeting), [this](error_code, std::size_t) {
          server_done = true;
          beast::get_lowest_layer(*server).close();
        });
      });
    });
  }

  void connect_tls(ssl::context& ctx, const std::optional<std::string>& server_name = "localhost") {
    client.emplace(io, ctx);
    beast::get_lowest_layer(*client).expires_after(kBound);
    if (server_name) set_server_name(*client, *server_name);
    beast::get_lowest_layer(*client).async_connect(acceptor.local_endpoint(), [this](error_code ec) {
      ASSERT_FALSE(ec) << ec.message();
      client->async_handshake(ssl::stream_base::client, [this](error_code hec) {
        if (hec) {
          client_ec = hec;
          client_reason = classify_handshake_failure(*client, hec);
          client_done = true;
          return;
        }
        client_received.resize(kGreeting.size());
        asio::async_read(*client, asio::buffer(client_received), [this](error_code rec, std::size_t n) {
          client_ec = rec;
          client_received.resize(n);
          client_done = true;
        });
      });
    });
  }

  // Plaintext (or partial) bytes, then the connection stays open until the server closes it.
  void connect_raw(std::string bytes) {
    raw.emplace(io);
    raw->connect(acceptor.local_endpoint());
    if (!bytes.empty()) asio::write(*raw, asio::buffer(bytes));
    client_done = true;
  }

  void run() {
    io.run_for(kBound);
    ASSERT_TRUE(server_done) << "the server handshake did not finish";
    ASSERT_TRUE(client_done) << "the client did not finish";
  }
};

TEST_F(Tls, GoodClientIsAcceptedAndNamed) {
  auto server_ctx = make_server_tls_context(server_files());
  auto client_ctx = make_client_tls_context(client_files("edge-1"));
  Handshake h;
  h.serve(server_ctx);
  h.connect_tls(client_ctx, "localhost");
  h.run();
  EXPECT_FALSE(h.server_ec) << h.server_ec.message();
  EXPECT_EQ(h.client_received, kGreeting) << h.client_ec.message();
  EXPECT_EQ(h.server_saw_cn, "edge-1");
  EXPECT_EQ(h.server_saw_sni, "localhost");
  EXPECT_EQ(SSL_version(h.client->native_handle()), TLS1_3_VERSION);
}

TEST_F(Tls, Tls12ClientIsAccepted) {
  auto server_ctx = make_server_tls_context(server_files());
  auto client_ctx = make_client_tls_context(client_files("edge-1"));
  SSL_CTX_set_max_proto_version(client_ctx.native_handle(), TLS1_2_VERSION);
  Handshake h;
  h.serve(server_ctx);
  h.connect_tls(client_ctx);
  h.run();
  EXPECT_FALSE(h.server_ec) << h.server_ec.message();
  EXPECT_EQ(h.client_received, kGreeting) << h.client_ec.message();
  EXPECT_EQ(SSL_version(h.client->native_handle()), TLS1_2_VERSION);
}

// The server refuses each of these clients; the client's own view is only that it was refused.
struct Refusal {
  const char* name;
  const char* cert;  // nullptr: no client certificate
  int max_version;   // 0: the policy's
  TlsFailure reason;
};

class TlsRefusal : public Tls, public ::testing::WithParamInterface<Refusal> {};

TEST_P(TlsRefusal, IsRefusedWithItsReason) {
  const Refusal& r = GetParam();
  auto server_ctx = make_server_tls_context(server_files());
  // Built by hand: make_client_tls_context refuses our own expired or not-yet-valid certificate at load.
  ssl::context client_ctx(ssl::context::tls_client);
  if (r.cert) {
    client_ctx.use_certificate_chain_file(file(std::string(r.cert) + ".crt").string());
    client_ctx.use_private_key_file(file(std::string(r.cert) + ".key").string(), ssl::context::pem);
  }
  client_ctx.load_verify_file(file("ca.crt").string());
  client_ctx.set_verify_mode(ssl::verify_peer);
  if (r.max_version) {
    // OpenSSL 3 allows TLS 1.0/1.1 only at security level 0, so an old client is built that way.
    SSL_CTX* native = client_ctx.native_handle();
    SSL_CTX_set_security_level(native, 0);
    ASSERT_EQ(SSL_CTX_set_min_proto_version(native, 0), 1);
    ASSERT_EQ(SSL_CTX_set_max_proto_version(native, r.max_version), 1);
    ASSERT_EQ(SSL_CTX_set_cipher_list(native, "DEFAULT:@SECLEVEL=0"), 1);
  }
  Handshake h;
  h.serve(server_ctx);
  h.connect_tls(client_ctx);
  h.run();
  ASSERT_TRUE(h.server_ec) << r.name << " was accepted";
  EXPECT_EQ(to_string(h.server_reason), to_string(r.reason)) << h.server_ec.message();
  EXPECT_TRUE(h.client_ec);
  EXPECT_TRUE(h.client_received.empty());
}

INSTANTIATE_TEST_SUITE_P(
    Clients, TlsRefusal,
    ::testing::Values(Refusal{"no_cert", nullptr, 0, TlsFailure::no_client_cert},
                      Refusal{"other_ca", "other-ca-client", 0, TlsFailure::unknown_ca},
                      Refusal{"same_name_ca_other_key", "impostor-client", 0, TlsFailure::unknown_ca},
                      Refusal{"self_signed", "self-signed-client", 0, TlsFailure::self_signed},
                      Refusal{"expired", "expired-client", 0, TlsFailure::expired},
                      Refusal{"not_yet_valid", "future-client", 0, TlsFailure::not_yet_valid},
                      Refusal{"tls1_1", "edge-1", TLS1_1_VERSION, TlsFailure::protocol_version},
                      Refusal{"tls1_0", "edge-1", TLS1_VERSION, TlsFailure::protocol_version}),
    [](const auto& info) { return std::string(info.param.name); });

// The server's reason for refusing a client that sends `bytes` (maybe none) and then waits.
std::string raw_refusal(ssl::context& server_ctx, const std::string& bytes,
                        std::chrono::milliseconds deadline = std::chrono::seconds(5)) {
  Handshake h;
  h.serve(server_ctx, deadline);
  h.connect_raw(bytes);
  h.run();
  if (!h.server_ec) return "accepted";
  return std::string(to_string(h.server_reason)) + " (" + h.server_ec.message() + ")";
}

TEST_F(Tls, PlaintextOnTheTlsPortIsNotTls) {
  auto server_ctx = make_server_tls_context(server_files());
  // An HTTP request (a probe on the wrong port) and a length-prefixed frame sent without TLS.
  EXPECT_THAT(raw_refusal(server_ctx, "GET /livez HTTP/1.1\r\nHost: localhost\r\n\r\n"),
              StartsWith("not_tls "));
  EXPECT_THAT(raw_refusal(server_ctx, std::string("\x08\x00\x00\x00hello!!!", 12)), StartsWith("not_tls "));
}

TEST_F(Tls, StalledHandshakeTimesOut) {
  auto server_ctx = make_server_tls_context(server_files());
  // Silent after connecting, and silent after the first bytes of a record header.
  EXPECT_THAT(raw_refusal(server_ctx, "", std::chrono::milliseconds(200)), StartsWith("timeout "));
  EXPECT_THAT(raw_refusal(server_ctx, "\x16\x03\x01", std::chrono::milliseconds(200)),
              StartsWith("timeout "));
}

// ---- the client's checks of the server ---------------------------------------------------------------

// The client's verdict on our server when it expects `name`: "accepted", or why it refused.
std::string client_verdict(ssl::context& server_ctx, ssl::context& client_ctx, const std::string& name) {
  Handshake h;
  h.serve(server_ctx);
  h.connect_tls(client_ctx, name);
  h.run();
  if (h.client_reason) return std::string(to_string(*h.client_reason)) + " (" + h.client_ec.message() + ")";
  return h.client_received == kGreeting ? "accepted"
                                        : "refused by the server (" + h.client_ec.message() + ")";
}

TEST_F(Tls, ClientAcceptsTheNamesInTheServerCertificate) {
  auto server_ctx = make_server_tls_context(server_files());
  auto client_ctx = make_client_tls_context(client_files("edge-1"));
  for (const char* name : {"localhost", "127.0.0.1", "::1"})
    EXPECT_EQ(client_verdict(server_ctx, client_ctx, name), "accepted") << name;
}

TEST_F(Tls, ClientRefusesAServerCertificateWithoutTheName) {
  auto server_ctx = make_server_tls_context(server_files());
  auto client_ctx = make_client_tls_context(client_files("edge-1"));
  for (const char* name : {"ee-cloud.example", "localhost.evil", "127.0.0.2"})
    EXPECT_THAT(client_verdict(server_ctx, client_ctx, name), StartsWith("name_mismatch ")) << name;
}

TEST_F(Tls, ClientRefusesAServerFromAnotherCa) {
  auto server_ctx = make_server_tls_context(server_files());
  auto client_ctx = make_client_tls_context(client_files("other-ca-client", "other-ca.crt"));
  EXPECT_THAT(client_verdict(server_ctx, client_ctx, "localhost"), StartsWith("unknown_ca "));
}

TEST_F(Tls, ServerNameMustNotBeEmpty) {
  asio::io_context io;
  ssl::context ctx(ssl::context::tls_client);
  ssl::stream<tcp::socket> stream(io, ctx);
  EXPECT_THROW(set_server_name(stream, ""), std::invalid_argument);
}

// ---- configuration errors name the file ---------------------------------------------------------------

std::string config_error(const TlsFiles& files) {
  try {
    make_server_tls_context(files);
  } catch (const TlsConfigError& e) {
    return e.what();
  }
  return "no error";
}

TEST_F(Tls, ConfigErrorsNameTheFile) {
  const fs::path missing = file("missing.crt");
  const fs::path garbage = file("garbage.pem");
  std::ofstream(garbage) << "not a certificate\n";

  EXPECT_THAT(config_error({missing, file("server.key"), file("ca.crt")}),
              HasSubstr("certificate file '" + missing.string() + "': No such file"));
  EXPECT_THAT(config_error({file("server.crt"), missing, file("ca.crt")}),
              HasSubstr("private key file '" + missing.string() + "'"));
  EXPECT_THAT(config_error({file("server.crt"), file("server.key"), missing}),
              HasSubstr("CA file '" + missing.string() + "'"));
  EXPECT_THAT(config_error({garbage, file("server.key"), file("ca.crt")}),
              HasSubstr("certificate file '" + garbage.string() + "' is not a PEM certificate"));
  EXPECT_THAT(config_error({file("server.crt"), garbage, file("ca.crt")}),
              HasSubstr("private key file '" + garbage.string() + "' is not an unencrypted PEM private key"));
  EXPECT_THAT(config_error({file("server.crt"), file("server.key"), garbage}),
              HasSubstr("CA file '" + garbage.string() + "' holds no PEM certificate"));
  EXPECT_THAT(config_error({file("server.crt"), file("edge-1.key"), file("ca.crt")}),
              HasSubstr("private key '" + file("edge-1.key").string() + "' does not belong to certificate '" +
                        file("server.crt").string() + "'"));
  EXPECT_THAT(config_error({file("expired-client.crt"), file("expired-client.key"), file("ca.crt")}),
              HasSubstr("certificate file '" + file("expired-client.crt").string() + "' expired on "));
  EXPECT_THAT(
      config_error({file("future-client.crt"), file("future-client.key"), file("ca.crt")}),
      HasSubstr("certificate file '" + file("future-client.crt").string() + "' is not valid before "));
  EXPECT_THROW(make_client_tls_context({file("edge-1.crt"), file("server.key"), file("ca.crt")}),
               TlsConfigError);
}

TEST(TlsFailureNames, AreTheMetricLabels) {
  EXPECT_EQ(to_string(TlsFailure::no_client_cert), "no_client_cert");
  EXPECT_EQ(to_string(TlsFailure::not_tls), "not_tls");
  EXPECT_EQ(to_string(TlsFailure::other), "other");
  EXPECT_EQ(classify_handshake_failure(error_code(), X509_V_ERR_CERT_HAS_EXPIRED), TlsFailure::expired);
  EXPECT_EQ(classify_handshake_failure(asio::error::connection_reset, X509_V_OK), TlsFailure::other);
  EXPECT_EQ(classify_handshake_failure(beast::error::timeout, X509_V_OK), TlsFailure::timeout);
}

}  // namespace
}  // namespace ee::net
