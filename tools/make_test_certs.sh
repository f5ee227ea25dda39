#!/bin/bash
# Generates the TLS test fixtures (CAs, good/expired/wrong-name/unknown-CA server certs) into DIR.
#
# Files written into DIR (EC P-256 keys, PEM):
#   ca.pem ca.key                 test CA
#   server.pem server.key         CN/SAN localhost + IP 127.0.0.1, signed by ca
#   expired.pem expired.key       same names, signed by ca, validity 2020-01-01..2020-01-02
#   wrong.pem wrong.key           CN/SAN wrong.example, signed by ca
#   other_ca.pem other_ca.key     an unrelated CA
#   unknown.pem unknown.key       localhost + 127.0.0.1, signed by other_ca
#   *_chain.pem                   leaf followed by its CA, for servers that send the chain
# Idempotent: when every file exists and is newer than this script, nothing is redone.
set -eu

if [ $# -ne 1 ]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
dir=$1
mkdir -p "$dir"
cd "$dir"

outputs="ca.pem ca.key server.pem server.key expired.pem expired.key wrong.pem wrong.key
         other_ca.pem other_ca.key unknown.pem unknown.key server_chain.pem"
self=$0
fresh=1
for f in $outputs; do
  if [ ! -s "$f" ] || { [ -f "$self" ] && [ "$self" -nt "$f" ]; }; then fresh=0; break; fi
done
[ "$fresh" = 1 ] && exit 0

# Work in a private scratch dir and move results into place at the end, so a test that runs
# this concurrently with another never reads a half-written file.
work=$(mktemp -d "${TMPDIR:-/tmp}/sb-certs.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# make_ca NAME CN
make_ca() {
  newkey "$work/$1.key"
  openssl req -x509 -new -key "$work/$1.key" -sha256 -days 3650 -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$work/$1.pem" 2>/dev/null
}

# leaf_ext SAN
leaf_ext() {
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\nauthorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n' "$1"
}

# make_leaf NAME CN SAN CA
make_leaf() {
  newkey "$work/$1.key"
  openssl req -new -key "$work/$1.key" -subj "/CN=$2" -out "$work/$1.csr" 2>/dev/null
  leaf_ext "$3" > "$work/$1.ext"
  openssl x509 -req -in "$work/$1.csr" -CA "$work/$4.pem" -CAkey "$work/$4.key" \
    -CAcreateserial -days 825 -sha256 -extfile "$work/$1.ext" -out "$work/$1.pem" 2>/dev/null
}

make_ca ca "smtpblast test CA"
make_ca other_ca "smtpblast unrelated test CA"
make_leaf server localhost "DNS:localhost,IP:127.0.0.1" ca
make_leaf wrong wrong.example "DNS:wrong.example" ca
make_leaf unknown localhost "DNS:localhost,IP:127.0.0.1" other_ca

# OpenSSL 3.0's `x509 -req` cannot set a start date in the past, but `openssl ca` takes
# -startdate/-enddate; it needs a minimal config and a database.
newkey "$work/expired.key"
openssl req -new -key "$work/expired.key" -subj "/CN=localhost" -out "$work/expired.csr" 2>/dev/null
mkdir -p "$work/cadb/new"
: > "$work/cadb/index.txt"
echo 1000 > "$work/cadb/serial"
cat > "$work/ca.cnf" <<CNF
[ ca ]
default_ca = test_ca
[ test_ca ]
dir = $work/cadb
database = \$dir/index.txt
serial = \$dir/serial
new_certs_dir = \$dir/new
default_md = sha256
policy = any_policy
unique_subject = no
copy_extensions = none
x509_extensions = leaf
[ any_policy ]
commonName = supplied
[ leaf ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
authorityKeyIdentifier = keyid
subjectKeyIdentifier = hash
CNF
openssl ca -batch -config "$work/ca.cnf" -cert "$work/ca.pem" -keyfile "$work/ca.key" \
  -startdate 20200101000000Z -enddate 20200102000000Z -notext \
  -in "$work/expired.csr" -out "$work/expired.pem" 2>/dev/null

cat "$work/server.pem" "$work/ca.pem" > "$work/server_chain.pem"

for f in $outputs; do
  chmod 600 "$work/$f" 2>/dev/null || true
  mv -f "$work/$f" "$f"
done
# Certificates are public; keys stay 0600.
chmod 644 ca.pem server.pem expired.pem wrong.pem other_ca.pem unknown.pem server_chain.pem
