#include "apps/tls_options.h"

namespace tandem {

void AddTlsOptions(CLI::App& sub, rpc::TlsFiles* files) {
  sub.add_option("--tls-cert", files->cert_file,
                 "PEM certificate this process presents on the control plane (TLS 1.3, mutual; with --tls-key and "
                 "--tls-ca on every router and node; it must name the address peers dial it at)")
      ->check(CLI::ExistingFile);
  sub.add_option("--tls-key", files->key_file, "PEM private key of --tls-cert")->check(CLI::ExistingFile);
  sub.add_option("--tls-ca", files->ca_file, "PEM CA certificate(s) the peers' certificates must chain to")
      ->check(CLI::ExistingFile);
}

void AppendTlsArgs(const rpc::TlsFiles& files, std::vector<std::string>* argv) {
  if (files.empty()) return;
  argv->insert(argv->end(), {"--tls-cert", files.cert_file, "--tls-key", files.key_file, "--tls-ca", files.ca_file});
}

}  // namespace tandem
