import dayjs from "dayjs";
import { v4 as uuidv4 } from "uuid";
import _ from "lodash";

export interface Item {
  id: string;
  name: string;
  tags: string[];
  createdAt: string;
}

// Store keeps items in memory: the app exists to be built, not to scale.
export class Store {
  private items = new Map<string, Item>();

  add(name: string, tags: string[]): Item {
    const item: Item = {
      id: uuidv4(),
      name,
      tags: _.uniq(tags.map((t) => t.trim().toLowerCase())).filter(Boolean),
      createdAt: dayjs().toISOString(),
    };
    this.items.set(item.id, item);
    return item;
  }

  get(id: string): Item | undefined {
    return this.items.get(id);
  }

  list(tag?: string): Item[] {
    const all = _.sortBy([...this.items.values()], (i) => i.createdAt);
    return tag ? all.filter((i) => i.tags.includes(tag)) : all;
  }

  remove(id: string): boolean {
    return this.items.delete(id);
  }

  countByTag(): Record<string, number> {
    return _.countBy(_.flatMap([...this.items.values()], (i) => i.tags));
  }
}
