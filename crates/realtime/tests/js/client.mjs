// Drives the realtime server with the official socket.io-client, exactly
// as a browser would (polling first, then the websocket upgrade).
// Prints one line per step for tests/js_client.rs to check:
//   REFUSED <message>   a bad token was refused at connect
//   ACK <json>          the presence:set acknowledgement
//   READY               waiting for a call:status event
//   EVENT <json>        the call:status event received
import { io } from "socket.io-client";

const url = process.env.REALTIME_URL;
const token = process.env.TOKEN;
const print = (line) => process.stdout.write(line + "\n");

setTimeout(() => {
  print("TIMEOUT");
  process.exit(3);
}, 30_000).unref();

function refusedWith(badToken) {
  return new Promise((resolve) => {
    const socket = io(url, { auth: { token: badToken }, reconnection: false });
    socket.on("connect", () => {
      socket.close();
      resolve("unexpectedly accepted");
    });
    socket.on("connect_error", (err) => {
      socket.close();
      resolve(err.message);
    });
  });
}

print("REFUSED " + (await refusedWith("not-a-token")));

const socket = io(url, { auth: { token }, reconnection: false });
socket.on("connect_error", (err) => {
  print("CONNECT_ERROR " + err.message);
  process.exit(2);
});
socket.on("call:status", (envelope) => {
  print("EVENT " + JSON.stringify(envelope));
  socket.close();
  process.exit(0);
});
socket.on("connect", async () => {
  const ack = await socket.timeout(10_000).emitWithAck("presence:set", { status: "available" });
  print("ACK " + JSON.stringify(ack));
  print("READY");
});
