#!/bin/sh
# What libdcp writes to an S3 server, seen by another client (the AWS CLI),
# and the other way round. Run against a server through with-radosgw.sh (or
# with-s3rver.sh): needs AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID,
# AWS_SECRET_ACCESS_KEY, AWS_REGION and DCP_S3_TEST_BUCKET.
#
# Usage: second-client-check.sh DCP_TOOL
#   DCP_TOOL  the dcp command-line tool (build/bin/dcp)
# Environment: DCP_AWS_CLI, the aws command (default: aws on PATH).
#
#  1. dcp saves a checkpoint to s3://BUCKET/PREFIX with 4 ranks (multipart
#     uploads and single PUTs) and, with the same seed, to a directory.
#  2. The AWS CLI lists PREFIX: .metadata and every data object, with the
#     sizes the directory's files have; it downloads each object, which must
#     be byte-equal to the file of the same name (the save id in the names
#     aside); and the download, as a directory, verifies (dcp verify) and
#     loads with 3 ranks (dcp load checks every element).
#  3. The AWS CLI uploads the directory's checkpoint to another prefix;
#     dcp loads it from there with 3 ranks.
# Exits 0 when all holds, 1 naming the first thing that does not, 2 on a
# usage error.
set -eu

die() {
	echo "second-client-check.sh: FAIL: $*" >&2
	exit 1
}
[ $# -eq 1 ] || {
	echo "usage: second-client-check.sh DCP_TOOL (the dcp tool, e.g. build/bin/dcp)" >&2
	exit 2
}
dcp=$1
aws=${DCP_AWS_CLI:-aws}
[ -x "$dcp" ] || die "the dcp tool $dcp is not an executable: build it (cmake --build BUILD --target dcp_tool)"
command -v "$aws" >/dev/null 2>&1 || die "the AWS CLI ($aws) is not installed: apt-get install -y awscli"
for v in AWS_ENDPOINT_URL_S3 AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION DCP_S3_TEST_BUCKET; do
	eval "val=\${$v:-}"
	[ -n "$val" ] || die "$v is not set: run this through tests/s3/with-radosgw.sh"
done
bucket=$DCP_S3_TEST_BUCKET

work=$(mktemp -d "${TMPDIR:-/tmp}/dcp-second-client.XXXXXX") || die "mktemp -d in ${TMPDIR:-/tmp} failed"
trap 'rm -rf "$work"' EXIT
log=$work/log

# run WHAT CMD...: runs CMD with its output in $log; fails naming WHAT.
run() {
	what=$1
	shift
	"$@" >"$log" 2>&1 || die "$what failed (exit status $?): $*
$(tail -n 20 "$log")"
}
# The endpoint is passed explicitly: older AWS CLIs (Debian's 2.9) do not
# read AWS_ENDPOINT_URL_S3.
awsc() {
	"$aws" --endpoint-url "$AWS_ENDPOINT_URL_S3" --region "$AWS_REGION" --no-paginate "$@"
}

stamp=$$-$(date +%s)
pre=second-client/$stamp
url="s3://$bucket/$pre"
# One data object per rank (threads=1) of about 6 MiB: multipart uploads of
# 5 MiB parts.
query="threads=1&part_size=5M&multipart_threshold=5M"

# 1. libdcp writes the same checkpoint to S3 and to a directory.
run "dcp save to $url" "$dcp" save --ranks 4 --size 24M --seed 7 "$url?$query"
run "dcp save to file://$work/ref" "$dcp" save --ranks 4 --size 24M --seed 7 "file://$work/ref?threads=1"

# 2. The AWS CLI lists and reads back what libdcp wrote.
run "aws s3api list-objects-v2 --bucket $bucket --prefix $pre/" \
	awsc s3api list-objects-v2 --bucket "$bucket" --prefix "$pre/" \
	--query 'Contents[].[Key,Size]' --output text
tr '\t' ' ' <"$log" | grep -v '^None$' | sort >"$work/listing" || true
[ -s "$work/listing" ] || die "the AWS CLI lists no object under s3://$bucket/$pre/ after dcp saved there:
$(cat "$log")"
grep -q "^$pre/\.metadata " "$work/listing" || die "the AWS CLI does not list $pre/.metadata:
$(cat "$work/listing")"
nlisted=$(wc -l <"$work/listing")
nref=$(find "$work/ref" -type f | wc -l)
ndata=0
nbig=0
[ "$nlisted" -eq "$nref" ] || die "the AWS CLI lists $nlisted objects under $pre/, the same save to a directory made $nref files:
$(cat "$work/listing")"

run "aws s3 cp --recursive s3://$bucket/$pre $work/got" \
	awsc s3 cp --recursive --only-show-errors "s3://$bucket/$pre" "$work/got"
while read -r key size; do
	name=${key#"$pre/"}
	case $name in */* | '') die "unexpected key $key under $pre/ (the layout has no subfolders)" ;; esac
	[ -f "$work/got/$name" ] || die "the AWS CLI listed $key but did not download it"
	got=$(wc -c <"$work/got/$name")
	[ "$got" -eq "$size" ] || die "$key: listed with $size bytes, the AWS CLI read $got"
	case $name in
	.metadata) continue ;;
	__*.distcp) ;;
	*) die "unexpected object $key (not .metadata nor __<rank>_<n>.<save id>.distcp)" ;;
	esac
	# __<rank>_<n>.<save id>.distcp: the same rank and n in the directory.
	stem=${name%%.*}
	ref=$(find "$work/ref" -name "$stem.*.distcp")
	[ -n "$ref" ] || die "$key has no counterpart $stem.*.distcp in the directory save"
	cmp "$ref" "$work/got/$name" >"$log" 2>&1 || die "$key as read by the AWS CLI differs from $ref, which dcp wrote with the same seed: $(cat "$log")"
	ndata=$((ndata + 1))
	[ "$size" -le 5242880 ] || nbig=$((nbig + 1))
done <"$work/listing"
[ "$ndata" -ge 4 ] || die "only $ndata data objects under $pre/, expected one per rank (4)"
[ "$nbig" -ge 1 ] || die "no data object above the 5 MiB multipart threshold: the check covers no multipart upload"
run "dcp verify of the AWS CLI's download" "$dcp" verify "file://$work/got"
run "dcp load --ranks 3 of the AWS CLI's download" "$dcp" load --ranks 3 --seed 7 "file://$work/got"

# 3. The AWS CLI uploads a checkpoint that libdcp loads.
pre2=second-client/$stamp-upload
run "aws s3 cp --recursive $work/ref s3://$bucket/$pre2" awsc s3 cp --recursive --only-show-errors "$work/ref" "s3://$bucket/$pre2"
run "dcp load --ranks 3 of what the AWS CLI uploaded" "$dcp" load --ranks 3 --seed 7 "s3://$bucket/$pre2"
run "dcp verify of what the AWS CLI uploaded" "$dcp" verify "s3://$bucket/$pre2"

echo "second-client-check.sh: OK: $nlisted objects written by dcp to s3://$bucket/$pre read back byte-equal by $aws; its upload of $nref files loads in dcp"
