from . import crm_collection_statement
