#!/usr/bin/env python3
"""A fake of Kinesis Video Streams' PutMedia data plane, for voicegw's tests.

It is written apart from voicegw's code on purpose: the request head is checked against the
headers KVS producers send (formats.md §9, kvs-putmedia.md §1.2), the SigV4 signature is
recomputed with botocore (an implementation independent of the aws-sigv4 crate voicegw signs
with) from fixed test credentials, the chunked body is de-chunked and the Matroska stream
parsed here, element by element, and acknowledgements are answered as KVS answers them
(BUFFERING when a fragment begins, RECEIVED and PERSISTED when it is whole, several merged in
one HTTP chunk, IDLE while the producer is silent), on the same connection while the body is
still being read.

Faults to inject (each `--flag N:...` counts connections from 1, over the whole fake):
  --refuse N:STATUS:TYPE   answer connection N with STATUS and x-amzn-ErrorType TYPE
  --error-ack N:K:ID       on connection N, answer the K-th fragment with an ERROR ack ErrorId ID
                           and end the response
  --disconnect N:K         on connection N, drop the TCP connection after the K-th fragment
  --ack-delay MS           hold every acknowledgement back for MS milliseconds
  --no-persist             the stream keeps no data: no PERSISTED acks
  --no-store               keep no bodies and no PCM, log only (load runs)
  --tls-cert PEM --tls-key PEM   serve HTTPS (as KVS endpoints do) instead of HTTP

What it saw goes to --state DIR: `log.jsonl` (one line per connection: the stream, whether the
head and the signature were right, every fragment with its timecode, tags and blocks, what was
wrong with the stream, how it ended), `<stream>.<n>.mkv` (each connection's body as received)
and `<stream>.pcm` (every block's samples placed at its timestamp, each timestamp once:
re-sent fragments count once).
"""

import argparse
import asyncio
import datetime
import json
import os
import struct
import sys

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

REQUIRED = {
    "x-amzn-fragment-timecode-type": "ABSOLUTE",
    "x-amzn-fragment-acknowledgment-required": "1",
}
EOFR = "AWS_KINESISVIDEO_END_OF_FRAGMENT"

SEGMENT, CLUSTER, TAGS, INFO, TRACKS = 0x18538067, 0x1F43B675, 0x1254C367, 0x1549A966, 0x1654AE6B
EBML = 0x1A45DFA3
TIMECODE, POSITION, SIMPLE_BLOCK = 0xE7, 0xA7, 0xA3
LEVEL1 = {CLUSTER, TAGS, INFO, TRACKS, 0x114D9B74, 0x1C53BB6B, 0x1941A469, 0x1043A770}
UNKNOWN = object()


class NeedMore(Exception):
    pass


def read_vint(buf, pos, keep_marker):
    if pos >= len(buf):
        raise NeedMore()
    first = buf[pos]
    length = 1
    mask = 0x80
    while length <= 8 and not first & mask:
        mask >>= 1
        length += 1
    if length > 8:
        raise ValueError("invalid EBML length descriptor")
    if pos + length > len(buf):
        raise NeedMore()
    value = first if keep_marker else first & (mask - 1)
    all_ones = (first & (mask - 1)) == mask - 1
    for b in buf[pos + 1 : pos + length]:
        value = (value << 8) | b
        all_ones = all_ones and b == 0xFF
    return value, length, all_ones


def uint(b):
    return int.from_bytes(b, "big") if b else 0


def parse_tags(body):
    """Name/value pairs of a Tags element's body."""
    out = []

    def walk(buf, depth):
        pos = 0
        while pos < len(buf):
            eid, n, _ = read_vint(buf, pos, True)
            size, m, _ = read_vint(buf, pos + n, False)
            data = buf[pos + n + m : pos + n + m + size]
            pos += n + m + size
            if eid in (0x7373, 0x67C8):  # Tag, SimpleTag
                if eid == 0x67C8:
                    name, value = None, None
                    p = 0
                    while p < len(data):
                        cid, a, _ = read_vint(data, p, True)
                        csize, b, _ = read_vint(data, p + a, False)
                        cdata = data[p + a + b : p + a + b + csize]
                        p += a + b + csize
                        if cid == 0x45A3:
                            name = cdata.decode()
                        elif cid == 0x4487:
                            value = cdata.decode()
                    out.append((name, value))
                else:
                    walk(data, depth + 1)

    walk(body, 0)
    return out


class Stream:
    """One connection's Matroska stream, parsed as it arrives."""

    def __init__(self, on_fragment_start, on_fragment_end):
        self.buf = bytearray()
        self.state = "header"
        self.problems = []
        self.fragments = []
        self.cluster = None  # the open fragment
        self.pending_tags = {}
        self.tracks = 0
        self.codec = None
        self.on_start = on_fragment_start
        self.on_end = on_fragment_end
        self.last_timecode = None
        self.eofr = 0

    def problem(self, what):
        if len(self.problems) < 50:
            self.problems.append(what)

    def feed(self, data):
        self.buf += data
        try:
            while True:
                if not self.step():
                    break
        except NeedMore:
            pass
        except ValueError as e:
            self.problem(f"not valid MKV: {e}")
            self.state = "broken"

    def close_cluster(self):
        if self.cluster is not None:
            c, self.cluster = self.cluster, None
            if not c["blocks"]:
                self.problem(f"fragment {c['timecode']} has no frame (4011)")
            self.on_end(c)

    def step(self):
        if self.state == "broken":
            self.buf.clear()
            return False
        buf = self.buf
        if not buf:
            return False
        eid, n, _ = read_vint(buf, 0, True)
        size, m, unknown = read_vint(buf, n, False)
        if self.state == "header":
            if eid != EBML:
                raise ValueError("the stream does not begin with an EBML header")
            if len(buf) < n + m + size:
                raise NeedMore()
            body = bytes(buf[n + m : n + m + size])
            if b"matroska" not in body:
                self.problem("DocType is not matroska")
            del buf[: n + m + size]
            self.state = "segment"
            return True
        if self.state == "segment":
            if eid != SEGMENT:
                raise ValueError("no Segment after the EBML header")
            if not (unknown and m == 1):
                self.problem("the Segment's size is not the one-byte unknown size")
            del buf[: n + m]
            self.state = "level1"
            return True
        if eid == EBML or eid == SEGMENT:
            self.problem("a second EBML header or Segment on one connection (4006)")
            raise ValueError("more than one Segment")
        if eid in LEVEL1:
            self.close_cluster()
            if eid == CLUSTER:
                if not (unknown and m == 1):
                    self.problem("a Cluster's size is not the one-byte unknown size")
                del buf[: n + m]
                self.cluster = {"timecode": None, "blocks": [], "tags": dict(self.pending_tags)}
                self.pending_tags = {}
                return True
            if unknown:
                raise ValueError(f"level-1 element {eid:x} of unknown size")
            if len(buf) < n + m + size:
                raise NeedMore()
            body = bytes(buf[n + m : n + m + size])
            del buf[: n + m + size]
            if eid == TAGS:
                for name, value in parse_tags(body):
                    if name == EOFR:
                        self.eofr += 1
                    else:
                        self.pending_tags[name] = value
            elif eid == TRACKS:
                self.tracks += body.count(b"\xae")
                self.codec = "A_PCM/INT/LIT" if b"A_PCM/INT/LIT" in body else "other"
            return True
        # Inside a Cluster.
        if self.cluster is None:
            raise ValueError(f"element {eid:x} outside a Cluster")
        if unknown or len(buf) < n + m + size:
            if unknown:
                raise ValueError(f"element {eid:x} of unknown size inside a Cluster")
            raise NeedMore()
        body = bytes(buf[n + m : n + m + size])
        del buf[: n + m + size]
        c = self.cluster
        if eid == TIMECODE:
            c["timecode"] = uint(body)
            if self.last_timecode is not None and c["timecode"] <= self.last_timecode:
                self.problem(f"fragment timecode {c['timecode']} not after {self.last_timecode} (4004)")
            self.last_timecode = c["timecode"]
            self.on_start(c)
        elif eid == SIMPLE_BLOCK:
            track, k, _ = read_vint(body, 0, False)
            if track != 1:
                self.problem(f"a block of track {track}, not declared (4010)")
            (rel,) = struct.unpack(">h", body[k : k + 2])
            flags = body[k + 2]
            if not flags & 0x80:
                self.problem("a block that is not a key frame")
            c["blocks"].append((rel, body[k + 3 :]))
        return True


class Fake:
    def __init__(self, args):
        self.args = args
        self.connections = 0
        self.numbers = 0
        self.pcm = {}  # stream -> {timestamp ms: bytes}
        os.makedirs(args.state, exist_ok=True)
        self.refuse = {int(a): (int(b), c) for a, b, c in (x.split(":", 2) for x in args.refuse)}
        self.error_ack = {int(a): (int(b), int(c)) for a, b, c in (x.split(":") for x in args.error_ack)}
        self.disconnect = {int(a): int(b) for a, b in (x.split(":") for x in args.disconnect)}

    def log(self, entry):
        with open(os.path.join(self.args.state, "log.jsonl"), "a") as f:
            f.write(json.dumps(entry) + "\n")

    def check_signature(self, headers, host):
        auth = headers.get("authorization", "")
        try:
            scheme, rest = auth.split(" ", 1)
            parts = dict(p.strip().split("=", 1) for p in rest.split(","))
            signed = parts["SignedHeaders"].split(";")
            access_key, date, region, service, term = parts["Credential"].split("/")
        except (ValueError, KeyError):
            return "no readable SigV4 Authorization header"
        if scheme != "AWS4-HMAC-SHA256" or service != "kinesisvideo" or term != "aws4_request":
            return f"not SigV4 for kinesisvideo: {scheme} {service} {term}"
        if access_key != self.args.access_key or region != self.args.region:
            return f"signed for {access_key} in {region}"
        for must in ["host", "x-amz-date", "x-amzn-stream-name", "x-amzn-producer-start-timestamp"]:
            if must not in signed:
                return f"{must} is not signed"
        amz_date = headers.get("x-amz-date", "")
        try:
            t = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
        except ValueError:
            return f"x-amz-date {amz_date!r} is not SigV4's format"
        skew = abs((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds())
        if skew > 300 or date != amz_date[:8]:
            return f"signed at {amz_date}, {skew:.0f} s away"
        req = AWSRequest(
            method="POST",
            url=f"http://{host}/putMedia",
            headers={h: headers[h] for h in signed if h in headers},
            data=b"",
        )
        req.context["timestamp"] = amz_date
        signer = SigV4Auth(Credentials(self.args.access_key, self.args.secret_key), "kinesisvideo", self.args.region)
        if signer.signed_headers(signer.headers_to_sign(req)) != parts["SignedHeaders"]:
            return f"signed headers {parts['SignedHeaders']} are not the request's"
        want = signer.signature(signer.string_to_sign(req, signer.canonical_request(req)), req)
        if want != parts.get("Signature"):
            return "the signature does not match"
        return None

    async def handle(self, reader, writer):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            # A probe of the port (the test waits for it to listen), or a TLS client that
            # refused the certificate: not a request.
            writer.close()
            return
        self.connections += 1
        n = self.connections
        entry = {"connection": n, "fragments": [], "problems": [], "acks": []}
        try:
            await self.serve(n, head, reader, writer, entry)
        except (ConnectionError, asyncio.IncompleteReadError) as e:
            entry["end"] = entry.get("end") or f"client went away: {e.__class__.__name__}"
        finally:
            self.log(entry)
            try:
                writer.close()
            except Exception:
                pass

    async def serve(self, n, head, reader, writer, entry):
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        entry["request"] = f"{method} {path}"
        entry["headers"] = {k: v for k, v in headers.items() if k != "authorization"}
        stream = headers.get("x-amzn-stream-name", "")
        entry["stream"] = stream
        problems = entry["problems"]
        if method != "POST" or not path.endswith("/putMedia"):
            problems.append(f"request line {lines[0]}")
        for k, v in REQUIRED.items():
            if headers.get(k) != v:
                problems.append(f"{k}: {headers.get(k)!r}")
        ts = headers.get("x-amzn-producer-start-timestamp", "")
        if not (len(ts.split(".")) == 2 and all(p.isdigit() for p in ts.split(".")) and len(ts.split(".")[1]) == 3):
            problems.append(f"x-amzn-producer-start-timestamp {ts!r} is not secs.mmm")
        if headers.get("transfer-encoding", "").lower() != "chunked" or "content-length" in headers:
            problems.append("the body is not chunked")
        if not stream.startswith("ChimeVoiceConnector-"):
            problems.append(f"stream name {stream!r}")
        bad_sig = self.check_signature(headers, headers.get("host", ""))
        entry["signature_ok"] = bad_sig is None
        if bad_sig:
            problems.append(bad_sig)
            await self.refuse_with(writer, 403, "NotAuthorizedException", bad_sig)
            entry["end"] = "refused 403"
            return
        if n in self.refuse:
            status, kind = self.refuse[n]
            await self.refuse_with(writer, status, kind, "injected")
            entry["end"] = f"refused {status}"
            return
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        await writer.drain()

        body_file = None if self.args.no_store else open(os.path.join(self.args.state, f"{stream}.{n}.mkv"), "wb")
        acks = asyncio.Queue()
        dropped = asyncio.Event()
        count = {"fragments": 0}
        pcm = self.pcm.setdefault(stream, {})

        def ack(obj):
            entry["acks"].append(obj["EventType"])
            acks.put_nowait(json.dumps(obj, separators=(",", ":")))

        def started(c):
            ack({"EventType": "BUFFERING", "FragmentTimecode": c["timecode"]})

        def ended(c):
            count["fragments"] += 1
            k = count["fragments"]
            entry["fragments"].append(
                {"timecode": c["timecode"], "blocks": len(c["blocks"]), "tags": c["tags"],
                 "samples": sum(len(b) for _, b in c["blocks"]) // 2}
            )
            if not self.args.no_store:
                for rel, payload in c["blocks"]:
                    pcm[c["timecode"] + rel] = payload
            if n in self.error_ack and self.error_ack[n][0] == k:
                ack({"EventType": "ERROR", "FragmentTimecode": c["timecode"], "ErrorId": self.error_ack[n][1]})
                acks.put_nowait(None)  # end the response
                return
            self.numbers += 1
            number = "91343852333181432392682062607743920146" + f"{self.numbers:010d}"
            entry["fragments"][-1]["number"] = number
            ack({"EventType": "RECEIVED", "FragmentTimecode": c["timecode"], "FragmentNumber": number})
            if not self.args.no_persist:
                ack({"EventType": "PERSISTED", "FragmentTimecode": c["timecode"], "FragmentNumber": number})
            if self.disconnect.get(n) == k:
                dropped.set()

        mkv = Stream(started, ended)

        async def send_acks():
            while True:
                try:
                    first = await asyncio.wait_for(acks.get(), timeout=2.0)
                except asyncio.TimeoutError:
                    first = json.dumps({"EventType": "IDLE"})
                    entry["acks"].append("IDLE")
                if first is None:
                    return
                if self.args.ack_delay:
                    await asyncio.sleep(self.args.ack_delay / 1000)
                # Whatever else is ready goes in the same HTTP chunk (merged acks).
                batch = [first]
                end = False
                while not acks.empty():
                    more = acks.get_nowait()
                    if more is None:
                        end = True
                        break
                    batch.append(more)
                data = "".join(batch).encode()
                writer.write(b"%x\r\n%s\r\n" % (len(data), data))
                await writer.drain()
                if end:
                    return

        sender = asyncio.create_task(send_acks())
        try:
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    mkv.close_cluster()
                    entry["end"] = "body ended"
                    break
                data = await reader.readexactly(size)
                await reader.readexactly(2)
                if body_file:
                    body_file.write(data)
                mkv.feed(data)
                if dropped.is_set():
                    entry["end"] = "dropped (injected)"
                    sender.cancel()
                    writer.transport.abort()
                    return
                if sender.done():
                    entry["end"] = "response ended after an error ack"
                    break
        finally:
            if body_file:
                body_file.close()
            entry["problems"] += mkv.problems
            entry["tracks"] = mkv.tracks
            entry["codec"] = mkv.codec
            entry["end_of_fragment_tags"] = mkv.eofr
            if not self.args.no_store:
                self.write_pcm(stream)
        if not sender.done():
            acks.put_nowait(None)
            await sender
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def refuse_with(self, writer, status, kind, message):
        body = json.dumps({"message": message}).encode()
        writer.write(
            b"HTTP/1.1 %d Refused\r\nx-amzn-ErrorType: %s:http://internal.example/\r\n"
            b"x-amzn-RequestId: 00000000-0000-0000-0000-000000000000\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (status, kind.encode(), len(body), body)
        )
        await writer.drain()

    def write_pcm(self, stream):
        pcm = self.pcm.get(stream, {})
        with open(os.path.join(self.args.state, f"{stream}.pcm"), "wb") as f:
            for t in sorted(pcm):
                f.write(pcm[t])


async def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listen", required=True, help="host:port")
    p.add_argument("--state", required=True)
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--access-key", default="testing")
    p.add_argument("--secret-key", default="testing")
    p.add_argument("--refuse", action="append", default=[])
    p.add_argument("--error-ack", action="append", default=[])
    p.add_argument("--disconnect", action="append", default=[])
    p.add_argument("--ack-delay", type=int, default=0)
    p.add_argument("--no-persist", action="store_true")
    p.add_argument("--no-store", action="store_true")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--limit-secs", type=int, default=600)
    args = p.parse_args()
    fake = Fake(args)
    host, port = args.listen.rsplit(":", 1)
    tls = None
    if args.tls_cert:
        import ssl

        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    server = await asyncio.start_server(fake.handle, host, int(port), ssl=tls)
    print("listening", flush=True)
    async with server:
        try:
            await asyncio.wait_for(server.serve_forever(), timeout=args.limit_secs)
        except asyncio.TimeoutError:
            pass


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
