/** A minimal QMP client: enough to ask a guest to power down, or qemu to quit. */
import { connect } from 'node:net';

export async function qmpCommand(socketPath: string, command: 'system_powerdown' | 'quit', timeoutMs = 5000): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const socket = connect(socketPath);
    let buffer = '';
    let stage = 0;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`QMP ${command}: no answer in ${timeoutMs} ms`));
    }, timeoutMs);
    const finish = (error?: Error) => {
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve();
    };
    socket.on('error', (error) => finish(error));
    socket.on('close', () => finish());
    socket.on('data', (chunk) => {
      buffer += chunk.toString('utf8');
      let newline: number;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const message = JSON.parse(buffer.slice(0, newline)) as Record<string, unknown>;
        buffer = buffer.slice(newline + 1);
        if (stage === 0 && 'QMP' in message) {
          socket.write('{"execute":"qmp_capabilities"}\n');
          stage = 1;
        } else if (stage === 1 && 'return' in message) {
          socket.write(`{"execute":"${command}"}\n`);
          stage = 2;
        } else if (stage === 2 && ('return' in message || 'error' in message)) {
          finish('error' in message ? new Error(`QMP ${command}: ${JSON.stringify(message.error)}`) : undefined);
        }
      }
    });
  });
}
