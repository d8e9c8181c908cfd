import { loadConfig } from "./lib/config";
import { newLogger } from "./lib/logger";
import { newApp } from "./app";
import { version } from "./version";

const cfg = loadConfig();
const log = newLogger(cfg.LOG_LEVEL);
newApp(cfg).listen(cfg.PORT, () => {
  log.info({ port: cfg.PORT, version }, "listening");
});
