// An SMSC simulator for smtpblast's SMS tests: the npm `smpp` package's server, scripted.
//
//   node smsc_sim.js SCRIPT.json
//
// Listens on script.host:script.port (port 0: any free one) and prints "LISTENING <port>" on
// stdout once it accepts. Run it through tests/support/smsc.py (Smsc), which writes the script
// and reads the log. Loopback only. The script (every key optional):
//   system_id, password      what a bind must carry (else ESME_RBINDFAIL, or bind_fail_status)
//   bind_fail_status         answer every bind with this status (e.g. 0x0D), then close
//   throttle_every: N        every Nth submit_sm is answered ESME_RTHROTTLED (0x58)
//   queue_full_every: N      every Nth submit_sm is answered ESME_RMSGQFUL (0x14)
//   reject: {"+4477…": st}   submit_sm to that number answered with status st (e.g. 0x0B)
//   refuse_part: {part, status, times}   a concatenated message's part `part` (by its UDH) is
//                            answered with `status` (e.g. 0x08), the first `times` (default 1)
//                            times: a message accepted in part
//   drop_after: N            after the Nth accepted submit_sm, the connection is cut (once)
//   drop_every: N            ... and then after every N more accepted (0: only once)
//   receipts: true           a delivery receipt (deliver_sm, esm_class 0x04) for each accepted
//                            message whose registered_delivery asks for one
//   receipt_stat: {"+…": s}  the receipt's stat for that number (default DELIVRD; UNDELIV,
//                            EXPIRED, REJECTD ...)
//   receipt_delay_ms         delay before a receipt goes out (default 0)
//   stop_from: ["+…"]        after the first bind, a mobile-originated "STOP" from each number
//   respond_delay_ms         delay before each submit_sm_resp (a slow SMSC)
//   deliver: [{...}]         deliver_sm PDUs (fields as the npm smpp package names them:
//                            source_addr, esm_class, short_message, receipted_message_id,
//                            message_state ...) queued at start for the first bound
//                            transceiver/receiver: receipts in any format, STOP and other replies
//   control: PATH            a file the simulator polls (every 50 ms) for appended JSON lines,
//                            each a deliver_sm like those of `deliver`: receipts on demand
//   tls_cert, tls_key        PEM files: the server speaks implicit TLS (SMPP over TLS)
//   log: PATH                one JSON line per submit_sm: {seq, to, from, text, status, id,
//                            udh: [ref, total, part] | null, dc, conn}, and per bind/unbind/drop
// Receipts and MOs for a bind that is gone wait for the next bound transceiver or receiver,
// so `sms receipts` after a run gets them.
'use strict';

const fs = require('fs');
const path = require('path');
const smpp = require(path.join(__dirname, 'node_modules', 'smpp'));

const script = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const logFd = script.log ? fs.openSync(script.log, 'a') : null;
function log(rec) {
  if (logFd !== null) fs.writeSync(logFd, JSON.stringify(rec) + '\n');
}

const ESME_ROK = 0x00;
const ESME_RBINDFAIL = 0x0d;
const ESME_RTHROTTLED = 0x58;
const ESME_RMSGQFUL = 0x14;

let submits = 0;         // every submit_sm seen
let accepted = 0;        // accepted ones
let nextDrop = script.drop_after || 0;
let nextId = 1;
let connSeq = 0;
let stopsSent = false;
let partsRefused = 0;    // refuse_part answers given
const pending = [];      // deliver_sm options waiting for a bound session
const bound = new Set(); // sessions that may receive deliver_sm

function flushPending() {
  for (const s of bound) {
    while (pending.length) {
      const opts = pending.shift();
      if (!s.send(new smpp.PDU('deliver_sm', opts))) {
        pending.unshift(opts);
        break;
      }
    }
    if (!pending.length) return;
  }
}

function queueDeliver(opts) {
  pending.push(opts);
  flushPending();
}

function udhOf(pdu) {
  const sm = pdu.short_message;
  if (!sm || !sm.udh) return null;
  for (const u of sm.udh) {
    if (u[0] === 0x00 && u.length >= 5) return [u[2], u[3], u[4]];
    if (u[0] === 0x08 && u.length >= 6) return [u[2] * 256 + u[3], u[4], u[5]];
  }
  return null;
}

function textOf(pdu) {
  const sm = pdu.short_message;
  if (sm === undefined || sm === null) return '';
  if (typeof sm === 'string') return sm;
  if (Buffer.isBuffer(sm)) return sm.toString('latin1');
  const m = sm.message;
  return Buffer.isBuffer(m) ? m.toString('latin1') : String(m === undefined ? '' : m);
}

function pad(n, w) {
  return String(n).padStart(w, '0');
}
function receiptTime(d) {
  return pad(d.getUTCFullYear() % 100, 2) + pad(d.getUTCMonth() + 1, 2) + pad(d.getUTCDate(), 2) +
      pad(d.getUTCHours(), 2) + pad(d.getUTCMinutes(), 2);
}

function deliverOpts(o) {
  const opts = Object.assign({source_addr_ton: 1, source_addr_npi: 1, destination_addr: 'sim'}, o);
  if (typeof opts.short_message === 'string') opts.short_message = Buffer.from(opts.short_message);
  return opts;
}
for (const d of script.deliver || []) pending.push(deliverOpts(d));

if (script.control) {
  let offset = 0;
  setInterval(() => {
    let data;
    try {
      data = fs.readFileSync(script.control);
    } catch (e) {
      return;
    }
    const end = data.lastIndexOf(0x0a) + 1;
    if (end <= offset) return;
    const lines = data.subarray(offset, end).toString('utf8').split('\n');
    offset = end;
    for (const line of lines) {
      if (line.trim()) queueDeliver(deliverOpts(JSON.parse(line)));
    }
  }, 50);
}

const serverOptions = {};
if (script.tls_cert) {
  serverOptions.cert = fs.readFileSync(script.tls_cert);
  serverOptions.key = fs.readFileSync(script.tls_key);
}
const server = smpp.createServer(serverOptions, (session) => {
  const conn = ++connSeq;
  let isBound = false;
  let dropped = false;  // cut by drop_after: what still arrives on it is never answered
  session.on('error', () => {});
  session.on('close', () => {
    bound.delete(session);
  });

  function onBind(pdu) {
    const ok = script.bind_fail_status === undefined &&
        (script.system_id === undefined || pdu.system_id === script.system_id) &&
        (script.password === undefined || pdu.password === script.password);
    log({event: 'bind', conn, command: pdu.command, system_id: pdu.system_id, ok});
    if (!ok) {
      session.send(pdu.response({
        command_status: script.bind_fail_status !== undefined ? script.bind_fail_status :
                                                                ESME_RBINDFAIL,
      }));
      session.close();
      return;
    }
    session.send(pdu.response({system_id: 'smsc-sim'}));
    isBound = true;
    if (pdu.command !== 'bind_transmitter') bound.add(session);
    if (!stopsSent && script.stop_from) {
      stopsSent = true;
      for (const from of script.stop_from) {
        pending.push({
          source_addr: from,
          source_addr_ton: 1,
          source_addr_npi: 1,
          destination_addr: 'sim',
          esm_class: 0,
          short_message: 'STOP',
        });
      }
    }
    flushPending();
  }
  session.on('bind_transceiver', onBind);
  session.on('bind_transmitter', onBind);
  session.on('bind_receiver', onBind);

  session.on('enquire_link', (pdu) => session.send(pdu.response()));
  session.on('deliver_sm_resp', (pdu) => {
    log({event: 'deliver_resp', conn, status: pdu.command_status});
  });
  session.on('unbind', (pdu) => {
    log({event: 'unbind', conn});
    bound.delete(session);
    session.send(pdu.response());
    session.close();
  });

  session.on('submit_sm', (pdu) => {
    if (dropped) return;
    if (!isBound) {
      session.send(pdu.response({command_status: 0x04}));  // ESME_RINVBNDSTS
      return;
    }
    submits++;
    const to = pdu.destination_addr;
    let status = ESME_ROK;
    const rp = script.refuse_part;
    const udh = udhOf(pdu);
    if (rp && udh && udh[2] === rp.part && partsRefused < (rp.times || 1)) {
      partsRefused++;
      status = rp.status;
    } else if (script.reject && script.reject[to] !== undefined) {
      status = script.reject[to];
    } else if (script.throttle_every && submits % script.throttle_every === 0) {
      status = ESME_RTHROTTLED;
    } else if (script.queue_full_every && submits % script.queue_full_every === 0) {
      status = ESME_RMSGQFUL;
    }
    const id = status === ESME_ROK ? 'm' + (nextId++) : '';
    const respond = () => {
      if (dropped) return;  // never answered: the client must send it again
      log({
        seq: pdu.sequence_number,
        to,
        from: pdu.source_addr,
        text: textOf(pdu),
        dc: pdu.data_coding,
        udh: udhOf(pdu),
        status,
        id,
        conn,
      });
      session.send(pdu.response({command_status: status, message_id: id}));
      if (status !== ESME_ROK) return;
      accepted++;
      if (nextDrop && accepted >= nextDrop) {
        // A cut without unbind (FIN after the response): the client must resume on a new bind.
        nextDrop = script.drop_every ? accepted + script.drop_every : 0;
        log({event: 'drop', conn, accepted});
        bound.delete(session);
        dropped = true;
        session.close();
      }
      if (script.receipts && (pdu.registered_delivery & 0x03)) {
        const stat = (script.receipt_stat && script.receipt_stat[to]) || 'DELIVRD';
        const now = receiptTime(new Date());
        const err = stat === 'DELIVRD' ? '000' : '001';
        const text = `id:${id} sub:001 dlvrd:${stat === 'DELIVRD' ? '001' : '000'} ` +
            `submit date:${now} done date:${now} stat:${stat} err:${err} text:`;
        const receipt = {
          source_addr: to,
          source_addr_ton: 1,
          source_addr_npi: 1,
          destination_addr: pdu.source_addr,
          esm_class: 0x04,
          short_message: text,
        };
        if (script.receipt_delay_ms) {
          setTimeout(() => queueDeliver(receipt), script.receipt_delay_ms);
        } else {
          queueDeliver(receipt);
        }
      }
    };
    if (script.respond_delay_ms) {
      setTimeout(respond, script.respond_delay_ms);
    } else {
      respond();
    }
  });
});

server.on('error', (e) => {
  process.stderr.write(`smsc_sim: ${e.message}\n`);
  process.exit(1);
});
server.listen(script.port || 0, script.host || '127.0.0.1', () => {
  process.stdout.write(`LISTENING ${server.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
