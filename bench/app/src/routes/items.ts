import { Router } from "express";
import { z } from "zod";
import { Store } from "../lib/store";

const newItem = z.object({
  name: z.string().min(1).max(200),
  tags: z.array(z.string().max(50)).max(20).default([]),
});

export function itemsRouter(store: Store): Router {
  const r = Router();
  r.get("/", (req, res) => {
    const tag = typeof req.query.tag === "string" ? req.query.tag : undefined;
    res.json(store.list(tag));
  });
  r.get("/stats", (_req, res) => {
    res.json(store.countByTag());
  });
  r.get("/:id", (req, res) => {
    const item = store.get(req.params.id);
    if (!item) {
      res.status(404).json({ error: "not found" });
      return;
    }
    res.json(item);
  });
  r.post("/", (req, res) => {
    const parsed = newItem.safeParse(req.body);
    if (!parsed.success) {
      res.status(400).json({ error: parsed.error.flatten() });
      return;
    }
    res.status(201).json(store.add(parsed.data.name, parsed.data.tags));
  });
  r.delete("/:id", (req, res) => {
    res.status(store.remove(req.params.id) ? 204 : 404).end();
  });
  return r;
}
