import pino from "pino";

export function newLogger(level: string) {
  return pino({ level, base: { service: "bench-app" } });
}

export type Logger = ReturnType<typeof newLogger>;
