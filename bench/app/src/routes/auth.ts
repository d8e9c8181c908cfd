import { Router, Request, Response, NextFunction } from "express";
import jwt from "jsonwebtoken";
import { z } from "zod";

const login = z.object({ user: z.string().min(1).max(64) });

export function authRouter(secret: string): Router {
  const r = Router();
  r.post("/token", (req, res) => {
    const parsed = login.safeParse(req.body);
    if (!parsed.success) {
      res.status(400).json({ error: "user is required" });
      return;
    }
    const token = jwt.sign({ sub: parsed.data.user }, secret, { expiresIn: "1h" });
    res.cookie("token", token, { httpOnly: true, sameSite: "strict" });
    res.json({ token });
  });
  return r;
}

// requireAuth accepts a bearer token or the "token" cookie.
export function requireAuth(secret: string) {
  return (req: Request, res: Response, next: NextFunction) => {
    const header = req.header("authorization");
    const token = header?.startsWith("Bearer ") ? header.slice(7) : req.cookies?.token;
    if (!token) {
      res.status(401).json({ error: "no token" });
      return;
    }
    try {
      res.locals.user = jwt.verify(token, secret);
      next();
    } catch {
      res.status(401).json({ error: "invalid token" });
    }
  };
}
