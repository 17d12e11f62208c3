#!/usr/bin/env python3
"""A TCP relay that records what crosses it (a capture of the daemons' links for
curve_capture.sh, where tcpdump needs privileges a test may not have).

usage: tcp_relay.py LISTEN_PORT TARGET_PORT CAPTURE_FILE PORT_FILE
Listens on 127.0.0.1:LISTEN_PORT (0: any free port, written to PORT_FILE), forwards
every connection to 127.0.0.1:TARGET_PORT, and appends both directions' bytes to
CAPTURE_FILE. Runs until killed."""
import socket
import sys
import threading

listen_port, target_port, capture_path, port_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
lock = threading.Lock()
capture = open(capture_path, "ab", buffering=0)


def pump(source, sink):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            with lock:
                capture.write(data)
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", listen_port))
server.listen(64)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.getsockname()[1]))
import os
os.rename(port_file + ".tmp", port_file)
while True:
    client, _ = server.accept()
    try:
        upstream = socket.create_connection(("127.0.0.1", target_port))
    except OSError:
        client.close()
        continue
    threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
    threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
