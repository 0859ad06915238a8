"""The PostgreSQL InstanceIndex (asyncpg): one database shared by any number of replicas."""
