import { DateResolver, DateTimeResolver, EmailAddressResolver, JSONResolver, UUIDResolver } from 'graphql-scalars';
import type { GraphQLScalarType } from 'graphql';
import type { Builder } from './builder.js';

type AnyBuilder = Pick<Builder, 'addScalarType'>;

export function registerScalars(builder: AnyBuilder) {
  builder.addScalarType('DateTime', DateTimeResolver as GraphQLScalarType<Date, Date | string>);
  builder.addScalarType('Date', DateResolver as unknown as GraphQLScalarType<string, string>, {
    // keep calendar dates as YYYY-MM-DD strings (no timezone shifting)
    parseValue: (v) => dateOnly(v),
    serialize: (v) => (v instanceof Date ? v.toISOString().slice(0, 10) : String(v)),
  });
  builder.addScalarType('UUID', UUIDResolver as GraphQLScalarType<string, string>);
  builder.addScalarType('Email', EmailAddressResolver as GraphQLScalarType<string, string>, {
    parseValue: (v) => String(EmailAddressResolver.parseValue(v)).toLowerCase(),
  });
  builder.addScalarType('JSON', JSONResolver as GraphQLScalarType<unknown, unknown>);
}

function dateOnly(v: unknown): string {
  if (typeof v !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(v)) throw new TypeError('Date must be YYYY-MM-DD');
  const d = new Date(`${v}T00:00:00Z`);
  if (Number.isNaN(d.getTime()) || d.toISOString().slice(0, 10) !== v) throw new TypeError('Date is not a calendar date');
  return v;
}
