-- Reference CRM: the tables pg-webhooks captures out of the box (README, "A two-minute tour").
-- Real applications attach the same capture to their own tables with webhooks.track(...).

create table public.organizations (
  id         uuid primary key default gen_random_uuid(),
  name       text not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table public.contacts (
  id              uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  first_name      text,
  last_name       text,
  email           text,
  phone           text,
  business_name   text,
  address         text,
  city            text,
  source          text,
  assigned_to     uuid,
  custom_fields   jsonb not null default '{}',
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now()
);
create index contacts_organization_id_idx on public.contacts (organization_id);

create table public.deals (
  id              uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  contact_id      uuid references public.contacts (id) on delete set null,
  title           text,
  stage           text,
  amount          numeric,
  assigned_to     uuid,
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now()
);
create index deals_organization_id_idx on public.deals (organization_id);

create table public.conversations (
  id              uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  contact_id      uuid references public.contacts (id) on delete set null,
  channel         text,
  status          text,
  assigned_to     uuid,
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now()
);
create index conversations_organization_id_idx on public.conversations (organization_id);

create table public.messages (
  id              uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  conversation_id uuid references public.conversations (id) on delete cascade,
  direction       text not null check (direction in ('inbound', 'outbound')),
  body            text,
  status          text,
  broadcast_id    uuid,
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now()
);
create index messages_organization_id_idx on public.messages (organization_id);

-- Keeps updated_at honest on every UPDATE of a reference table.
create function public.set_updated_at() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
  new.updated_at := now();
  return new;
end
$$;
comment on function public.set_updated_at() is 'Trigger: sets updated_at = now() before each UPDATE.';

create trigger set_updated_at before update on public.organizations for each row execute function public.set_updated_at();
create trigger set_updated_at before update on public.contacts for each row execute function public.set_updated_at();
create trigger set_updated_at before update on public.deals for each row execute function public.set_updated_at();
create trigger set_updated_at before update on public.conversations for each row execute function public.set_updated_at();
create trigger set_updated_at before update on public.messages for each row execute function public.set_updated_at();
