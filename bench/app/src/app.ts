import express from "express";
import cors from "cors";
import helmet from "helmet";
import compression from "compression";
import morgan from "morgan";
import cookieParser from "cookie-parser";
import rateLimit from "express-rate-limit";
import { Config } from "./lib/config";
import { Store } from "./lib/store";
import { healthRouter } from "./routes/health";
import { itemsRouter } from "./routes/items";
import { authRouter, requireAuth } from "./routes/auth";

export function newApp(cfg: Config, store = new Store()) {
  const app = express();
  app.disable("x-powered-by");
  app.use(helmet());
  app.use(cors());
  app.use(compression());
  app.use(morgan("tiny"));
  app.use(express.json({ limit: "100kb" }));
  app.use(cookieParser());
  app.use(rateLimit({ windowMs: 60_000, limit: cfg.RATE_LIMIT_PER_MINUTE, standardHeaders: "draft-7", legacyHeaders: false }));
  app.use(healthRouter());
  app.use("/auth", authRouter(cfg.JWT_SECRET));
  app.use("/items", requireAuth(cfg.JWT_SECRET), itemsRouter(store));
  return app;
}
