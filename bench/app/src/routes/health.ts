import { Router } from "express";
import dayjs from "dayjs";
import { version, revision } from "../version";

const started = dayjs();

export function healthRouter(): Router {
  const r = Router();
  r.get("/healthz", (_req, res) => {
    res.json({ ok: true, version, revision, uptimeSeconds: dayjs().diff(started, "second") });
  });
  return r;
}
