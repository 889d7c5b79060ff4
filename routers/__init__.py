"""One APIRouter per building block, on Dapr's URLs: parse -> service -> shape."""
