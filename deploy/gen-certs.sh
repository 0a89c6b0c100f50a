#!/usr/bin/env bash
# Development certificates for mutual TLS between ee-edge and ee-cloud (openssl CLI, EC P-256 keys).
#
# Usage: deploy/gen-certs.sh [--force] [--days N] [--server-san SAN]... [--test-certs] DIR [EDGE_NAME...]
#
#   DIR/ca.crt, ca.key           development CA (CN "eesplit development CA"); both daemons trust ca.crt
#   DIR/server.crt, server.key   ee-cloud's certificate (CN ee-cloud), SAN DNS:localhost, IP:127.0.0.1,
#                                IP:::1 and every --server-san (e.g. --server-san DNS:ee-cloud.default.svc)
#   DIR/EDGE.crt, EDGE.key       one client certificate per edge name (CN EDGE), default name: edge-1
#
# Existing files are kept, so running it again is harmless; --force regenerates everything. A new CA with old
# leaf certificates beside it is refused (they would no longer verify). Certificates last --days (default
# 825) from now. Keys are written mode 600.
#
# --test-certs also writes, for the TLS tests, client certificates that a server trusting ca.crt must refuse:
#   other-ca.crt/.key + other-ca-client.crt/.key  another CA (CN "eesplit other CA") and a client it signed
#   impostor-ca.crt/.key + impostor-client.crt/.key  a CA with ca.crt's subject name but another key, and a
#                                 client it signed (no authority key id: only the signature tells them apart)
#   self-signed-client.crt/.key   a self-signed client certificate
#   expired-client.crt/.key       signed by ca.crt, valid from 60 to 30 days ago
#   future-client.crt/.key        signed by ca.crt, valid from 30 days on
set -euo pipefail

usage() {
  sed -n '4p' "$0" | sed 's/^# //' >&2
  exit 2
}

force=0
days=825
test_certs=0
server_sans=("DNS:localhost" "IP:127.0.0.1" "IP:::1")
while (($#)); do
  case "$1" in
    --force) force=1 ;;
    --days) days="${2:?--days needs a value}"; shift ;;
    --server-san) server_sans+=("${2:?--server-san needs a value}"); shift ;;
    --test-certs) test_certs=1 ;;
    -h | --help) usage ;;
    --*) echo "gen-certs: unknown option $1" >&2; usage ;;
    *) break ;;
  esac
  shift
done
(($#)) || usage
dir="$1"
shift
edges=("$@")
((${#edges[@]})) || edges=(edge-1)
for e in "${edges[@]}"; do
  if [[ ! "$e" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || [[ "$e" == ca || "$e" == server ]]; then
    echo "gen-certs: bad edge name '$e' (letters, digits, . _ -; not 'ca' or 'server')" >&2
    exit 2
  fi
done
[[ "$days" =~ ^[1-9][0-9]*$ ]] || { echo "gen-certs: --days must be a positive integer, got '$days'" >&2; exit 2; }

command -v openssl >/dev/null || { echo "gen-certs: openssl not found (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$dir"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# UTC timestamps in the form `openssl ca -startdate/-enddate` takes.
stamp() { date -u -d "$1" +%Y%m%d%H%M%SZ; }

new_key() {
  (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null)
}

# sign NAME CN ISSUER EXTENSIONS START END: writes DIR/NAME.key (new) and DIR/NAME.crt signed by
# DIR/ISSUER.{crt,key}; ISSUER "self" makes it self-signed. One `openssl ca` path for every certificate, since
# only it sets arbitrary validity dates on OpenSSL 3.0 (x509 has no -not_before there).
sign() {
  local name="$1" cn="$2" issuer="$3" ext="$4" start="$5" end="$6"
  local db="$work/$name"
  mkdir -p "$db"
  : >"$db/index.txt"
  openssl rand -hex 16 >"$db/serial"
  printf '%s\n' "$ext" >"$db/ext.cnf"
  cat >"$db/ca.cnf" <<EOF
[ca]
default_ca = dev
[dev]
database = $db/index.txt
new_certs_dir = $db
serial = $db/serial
default_md = sha256
policy = any
unique_subject = no
[any]
commonName = supplied
EOF
  new_key "$dir/$name.key"
  openssl req -new -key "$dir/$name.key" -subj "/CN=$cn" -out "$db/req.csr"
  local signer=(-cert "$dir/$issuer.crt" -keyfile "$dir/$issuer.key")
  [[ "$issuer" == self ]] && signer=(-selfsign -keyfile "$dir/$name.key")
  openssl ca -batch -notext -config "$db/ca.cnf" "${signer[@]}" -in "$db/req.csr" -out "$dir/$name.crt" \
    -extfile "$db/ext.cnf" -startdate "$start" -enddate "$end" 2>"$db/log" || {
    cat "$db/log" >&2
    exit 1
  }
}

ca_ext='basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always'
client_ext='basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid'
server_ext="basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = $(IFS=,; echo "${server_sans[*]}")"

now="$(stamp now)"
until="$(stamp "+$days days")"

# issue NAME CN ISSUER EXT [START END]: sign unless both files exist (and --force is off).
issue() {
  local name="$1"
  if ((!force)) && [[ -f "$dir/$name.crt" && -f "$dir/$name.key" ]]; then
    echo "kept    $dir/$name.crt $dir/$name.key"
    return
  fi
  sign "$name" "$2" "$3" "$4" "${5:-$now}" "${6:-$until}"
  echo "created $dir/$name.crt $dir/$name.key"
}

if ((force)) || [[ ! -f "$dir/ca.crt" || ! -f "$dir/ca.key" ]]; then
  # Checked before the CA changes: leaf files of the old CA would otherwise be kept beside the new one.
  if ((!force)); then
    signed_by_ca=(server "${edges[@]}")
    ((test_certs)) && signed_by_ca+=(expired-client future-client)
    for leaf in "${signed_by_ca[@]}"; do
      [[ -f "$dir/$leaf.crt" ]] || continue
      echo "gen-certs: $dir/ca.crt or ca.key is missing but $dir/$leaf.crt exists; use --force" >&2
      exit 1
    done
  fi
  sign ca "eesplit development CA" self "$ca_ext" "$now" "$(stamp "+$((days + 365)) days")"
  echo "created $dir/ca.crt $dir/ca.key"
else
  echo "kept    $dir/ca.crt $dir/ca.key"
fi
issue server ee-cloud ca "$server_ext"
for e in "${edges[@]}"; do issue "$e" "$e" ca "$client_ext"; done

if ((test_certs)); then
  issue other-ca "eesplit other CA" self "$ca_ext"
  issue other-ca-client edge-1 other-ca "$client_ext"
  issue impostor-ca "eesplit development CA" self "$ca_ext"
  # Without an authority key id, so a verifier finds ca.crt by name and must check the signature to refuse.
  issue impostor-client edge-1 impostor-ca "${client_ext/= keyid/= none}"
  issue self-signed-client edge-1 self "basicConstraints = critical, CA:false
extendedKeyUsage = clientAuth"
  issue expired-client edge-1 ca "$client_ext" "$(stamp '-60 days')" "$(stamp '-30 days')"
  issue future-client edge-1 ca "$client_ext" "$(stamp '+30 days')" "$(stamp '+60 days')"
fi
