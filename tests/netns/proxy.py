"""A minimal test sidecar: run as UID 1500 inside the pod namespace.

Listens on the outbound (15001) and inbound (15003) ports for IPv4 and IPv6, reads the original
destination with SO_ORIGINAL_DST, answers a first line `via-proxy <port> orig=<ip>:<port>`, then
forwards: inbound connections to the app over loopback (like Pipy in Localhost mode), outbound
ones to the original destination. Prints `ready` once listening.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
import sys

SO_ORIGINAL_DST = 80  # SOL_IP / SOL_IPV6 (IP6T_SO_ORIGINAL_DST) option number


def original_dst(sock: socket.socket, family: int) -> tuple[str, int]:
    if family == socket.AF_INET:
        raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
        port = struct.unpack_from("!H", raw, 2)[0]
        return str(ipaddress.IPv4Address(raw[4:8])), port
    raw = sock.getsockopt(socket.IPPROTO_IPV6, SO_ORIGINAL_DST, 28)
    port = struct.unpack_from("!H", raw, 2)[0]
    return str(ipaddress.IPv6Address(raw[8:24])), port


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.write_eof()
        except (OSError, RuntimeError):
            writer.close()


def handler(listen_port: int, inbound: bool, family: int, quiet: bool):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        try:
            ip, port = original_dst(sock, family)
        except OSError as exc:
            writer.write(f"proxy-error no-original-dst {exc}\n".encode())
            writer.close()
            return
        target = ("127.0.0.1" if family == socket.AF_INET else "::1") if inbound else ip
        if not quiet:
            writer.write(f"via-proxy {listen_port} orig={ip}:{port}\n".encode())
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(target, port), 3)
        except (OSError, TimeoutError) as exc:
            writer.write(f"proxy-error connect {target}:{port} {exc}\n".encode())
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        writer.close()
        up_writer.close()

    return handle


async def main() -> None:
    outbound, inbound = int(sys.argv[1]), int(sys.argv[2])
    quiet = "--quiet" in sys.argv
    servers = []
    for port, is_inbound in ((outbound, False), (inbound, True)):
        for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((host, port))
            servers.append(
                await asyncio.start_server(handler(port, is_inbound, family, quiet), sock=sock, backlog=512)
            )
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    asyncio.run(main())
