// A self-signed certificate for the control plane's TLS (tls.h): `tandem serve --tls` makes one
// per cluster, as it makes a cluster secret, and the tests make theirs. Real deployments bring
// certificates from their own CA; docs/operations.md shows the openssl commands.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace tandem::rpc {

// Writes a new EC P-256 key (mode 0600) and a certificate for it, signed by itself, valid from
// now for `days`, that names each of `names` as a subjectAltName (an IP address when it parses
// as one, a DNS name otherwise). The certificate is its own CA: give it as --tls-ca too.
// InvalidArgument for no names or days < 1; Unavailable when a file cannot be written.
Status WriteSelfSignedCertificate(const std::string& cert_path, const std::string& key_path,
                                  const std::vector<std::string>& names, int days = 365);

}  // namespace tandem::rpc
