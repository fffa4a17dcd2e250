#!/usr/bin/env python3
"""oci-token-server.py PORT KEY CERT ISSUER USER:PASSWORD - a Docker registry
token service for tests/test_oci.sh: GET /token?service=S&scope=repository:R:A
with Basic USER:PASSWORD answers {"token": JWT}, the JWT (RS256, signed with
KEY by the openssl command, the CERT in its x5c header) granting the scope's
actions; anything else is 401. Every request is logged on stdout."""
import base64, json, os, subprocess, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse

port, key, cert, issuer, creds = sys.argv[1:6]


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b'=').decode()


def der(path):
    pem = open(path).read().split('-----')[2]
    return base64.b64decode(''.join(pem.split()))


def token(service, scope, user):
    access = []
    if scope:
        kind, name, actions = scope.split(':')
        access.append({'type': kind, 'name': name, 'actions': actions.split(',')})
    now = int(time.time())
    header = {'typ': 'JWT', 'alg': 'RS256', 'x5c': [base64.b64encode(der(cert)).decode()]}
    claims = {'iss': issuer, 'sub': user, 'aud': service, 'exp': now + 600, 'nbf': now - 10,
              'iat': now, 'jti': os.urandom(8).hex(), 'access': access}
    signing = (b64url(json.dumps(header).encode()) + '.' + b64url(json.dumps(claims).encode()))
    sig = subprocess.run(['openssl', 'dgst', '-sha256', '-sign', key], input=signing.encode(),
                         capture_output=True, check=True).stdout
    return signing + '.' + b64url(sig)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urlparse(self.path)
        q = parse_qs(url.query)
        auth = self.headers.get('Authorization', '')
        want = 'Basic ' + base64.b64encode(creds.encode()).decode()
        print('token request', url.path, q, 'authorised' if auth == want else 'refused', flush=True)
        if url.path != '/token' or auth != want:
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps({'token': token(q.get('service', [''])[0], q.get('scope', [''])[0],
                                          creds.split(':')[0])}).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


HTTPServer(('127.0.0.1', int(port)), Handler).serve_forever()
