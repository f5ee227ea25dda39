#!/usr/bin/env node
// Nodemailer's pooled SMTP transport as the reference sender of bench/bench_tls.py.
//
//   node bench/nodemailer_send.js --host 127.0.0.1 --port PORT --count N
//        --message rendered.eml --from sender@example.test [--ca ca.pem]
//        [--connections 10] [--max-messages 100|inf] [--resume] [--no-tls]
//
// Sends the same raw message (the template rendered once, as smtp-source -F does) N times,
// each to its own recipient (user0000001@example.test, …), through
// nodemailer.createTransport({pool: true, maxConnections, maxMessages, requireTLS: true,
// tls: {ca, minVersion: 'TLSv1.2'}}). All N sendMail() calls are queued at once; the pool
// keeps `connections` connections busy and replaces a connection after `max-messages`.
//
// --resume: TLS session resumption. Nodemailer has no option for it, so tls.connect is
// wrapped to pass the last session ticket the pool received (`session`) and to remember
// every new one ('session' event): each new connection offers the latest ticket.
// Without --resume every connection does a full handshake (Nodemailer's behaviour).
//
// Prints one JSON line: {"sent", "failed", "elapsed_s", "resumed", "handshakes"}.
'use strict';

const fs = require('fs');
const path = require('path');
const tls = require('tls');

function parseArgs(argv) {
    const a = {host: '127.0.0.1', port: 25, count: 1000, connections: 10, maxMessages: 100,
               from: 'sender@example.test', resume: false, tls: true, ca: null, message: null,
               domain: 'example.test'};
    for (let i = 2; i < argv.length; i++) {
        const k = argv[i];
        const v = () => argv[++i];
        switch (k) {
            case '--host': a.host = v(); break;
            case '--port': a.port = parseInt(v(), 10); break;
            case '--count': a.count = parseInt(v(), 10); break;
            case '--connections': a.connections = parseInt(v(), 10); break;
            case '--max-messages': {
                // "inf": never replace a connection (the pool compares messages >= maxMessages).
                const m = v();
                a.maxMessages = m === 'inf' ? Infinity : parseInt(m, 10);
                break;
            }
            case '--from': a.from = v(); break;
            case '--ca': a.ca = v(); break;
            case '--message': a.message = v(); break;
            case '--domain': a.domain = v(); break;
            case '--resume': a.resume = true; break;
            case '--no-tls': a.tls = false; break;
            default:
                console.error(`unknown argument ${k}`);
                process.exit(2);
        }
    }
    if (!a.message) {
        console.error('--message is required');
        process.exit(2);
    }
    return a;
}

const args = parseArgs(process.argv);

// Counters of handshakes, and session resumption for --resume (see above).
let handshakes = 0;
let resumed = 0;
let lastSession = null;
const realConnect = tls.connect;
tls.connect = function (...cargs) {
    const opts = cargs.find(x => x && typeof x === 'object') || {};
    if (args.resume && lastSession && !opts.session) {
        opts.session = lastSession;
    }
    const sock = realConnect.apply(this, cargs);
    if (args.resume) {
        sock.on('session', s => { lastSession = s; });
    }
    sock.once('secureConnect', () => {
        handshakes++;
        if (sock.isSessionReused()) {
            resumed++;
        }
    });
    return sock;
};

// Required after the wrap (nodemailer looks tls.connect up at call time anyway).
const nodemailer = require(path.join(__dirname, 'node_modules', 'nodemailer'));

function recipient(i) {
    return `user${String(i).padStart(7, '0')}@${args.domain}`;
}

async function main() {
    // The rendered message with CRLF line ends, as on the wire.
    const raw = Buffer.from(fs.readFileSync(args.message, 'latin1').replace(/\r?\n/g, '\r\n'),
                            'latin1');
    const opts = {
        host: args.host,
        port: args.port,
        secure: false,
        pool: true,
        maxConnections: args.connections,
        maxMessages: args.maxMessages,
        name: 'client.example.test',
        connectionTimeout: 30000,
        greetingTimeout: 30000,
        socketTimeout: 120000,
        logger: false,
        debug: false,
    };
    if (args.tls) {
        opts.requireTLS = true;
        opts.tls = {minVersion: 'TLSv1.2'};
        if (args.ca) {
            opts.tls.ca = [fs.readFileSync(args.ca)];
        }
    } else {
        opts.ignoreTLS = true;
    }
    const transport = nodemailer.createTransport(opts);
    const t0 = process.hrtime.bigint();
    let sent = 0;
    let failed = 0;
    let firstError = null;
    const jobs = [];
    for (let i = 1; i <= args.count; i++) {
        jobs.push(transport.sendMail({envelope: {from: args.from, to: [recipient(i)]}, raw})
            .then(() => { sent++; },
                  err => { failed++; if (!firstError) firstError = err; }));
    }
    await Promise.all(jobs);
    const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
    transport.close();
    const out = {sent, failed, elapsed_s: elapsed, handshakes, resumed};
    if (firstError) {
        out.error = String(firstError && firstError.message || firstError);
    }
    console.log(JSON.stringify(out));
    process.exitCode = failed ? 1 : 0;
}

main().catch(err => {
    console.error(err);
    process.exit(1);
});
